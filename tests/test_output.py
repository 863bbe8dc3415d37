"""What reaches the terminal, and what the run keeps in RUN/logs/: the workers' whole output, one file per segment."""

from __future__ import annotations

import pytest

from conftest import assert_exit, fit_args, run_cli
from segtrain.worker.output import CHATTER

pytestmark = pytest.mark.slow


def _chatter(text: str) -> list[str]:
    return [line for line in text.splitlines() if CHATTER.match(line)]


def test_the_terminal_shows_the_scripts_lines_not_the_backends_and_the_logs_keep_both(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(*fit_args("chatty", run_dir, 3, 2))
    assert_exit(proc, 0)
    assert _chatter(proc.stderr) == [] and _chatter(proc.stdout) == []
    assert "chatty: script imported" in proc.stderr
    assert [line for line in proc.stderr.splitlines() if "done" in line and "chatty" in line] == [
        "chatty: epoch 1 done",
        "chatty: epoch 2 done",
        "chatty: epoch 3 done",
    ]
    logs = sorted(p.name for p in (run_dir / "logs").iterdir())
    assert logs == ["segment-0001.log", "segment-0002.log"]  # the unused spare of no third segment left none
    first = (run_dir / "logs" / "segment-0001.log").read_text()
    assert _chatter(first), "the backend's start-up lines are kept in the log"
    assert "chatty: epoch 1 done" in first and "chatty: epoch 3 done" not in first
    assert "chatty: epoch 3 done" in (run_dir / "logs" / "segment-0002.log").read_text()


def test_verbose_shows_everything_and_quiet_nothing_but_errors(tmp_path):
    loud = run_cli(*fit_args("chatty", tmp_path / "loud", 1, 1), "--verbose")
    assert_exit(loud, 0)
    assert _chatter(loud.stderr) and "chatty: epoch 1 done" in loud.stderr
    quiet = run_cli(*fit_args("chatty", tmp_path / "quiet", 1, 1), "--quiet")
    assert_exit(quiet, 0)
    assert quiet.stdout == "" and quiet.stderr == ""
    both = run_cli(*fit_args("chatty", tmp_path / "both", 1, 1), "-v", "-q")
    assert_exit(both, 2)
    assert "--verbose and --quiet contradict each other" in both.stderr


def test_a_worker_that_dies_is_shown_with_its_last_lines_and_its_log(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(*fit_args("chatty", run_dir, 4, 2), env={"DIE_AT_EPOCH": "3"})
    assert_exit(proc, 1)
    log = run_dir / "logs" / "segment-0002.log"
    assert "was killed by signal 9 before finishing" in proc.stderr
    assert "| chatty: about to die" in proc.stderr
    assert f"Its log: {log}" in proc.stderr
    assert "chatty: about to die" in log.read_text()

"""Where a worker's output goes: its stdout to segtrain's stdout, its stderr to segtrain's stderr (less the
backend's start-up chatter), segtrain's own lines to stderr, and all of it to RUN/logs/, one file per segment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import SCRIPTS, assert_exit, cli_env, fit_args, run_cli, segtrain_cmd
from segtrain.worker.output import CHATTER

pytestmark = pytest.mark.slow

PRINTING = SCRIPTS / "plain" / "printing.py"
BEFORE = "printing: before fit"


def _chatter(text: str) -> list[str]:
    return [line for line in text.splitlines() if CHATTER.match(line)]


def _before_the_table(stdout: str) -> list[str]:
    """The lines of `stdout` above `segtrain fit`'s report (its table's title: `segtrain run RUN_DIR`)."""
    lines = stdout.splitlines()
    title = next(i for i, line in enumerate(lines) if line.strip().startswith("segtrain run "))
    return lines[:title]


def _no_bar(text: str) -> None:
    __tracebackhide__ = True
    assert not any(bit in text for bit in ("\r", "\x1b", "%|", "epoch/s", "s/epoch=")), repr(text)


def _printed(epochs: int) -> list[str]:
    """What tests/scripts/plain/printing.py prints on stdout, under `segtrain run` as under `python`."""
    return [BEFORE, *(f"printing: epoch {epoch}" for epoch in range(1, epochs + 1)), "printing: after fit"]


def test_fit_the_scripts_stdout_on_stdout_in_order_the_backends_lines_not_and_the_logs_keep_both(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli("fit", SCRIPTS / "chatty.py", "--epochs", 3, "--segment", 2, "--run-dir", run_dir)  # with the bar
    assert_exit(proc, 0)
    assert _chatter(proc.stderr) == [] and _chatter(proc.stdout) == []
    # The second worker imported the script while the first trained: its line waited until it took over.
    assert _before_the_table(proc.stdout) == [
        "chatty: script imported",
        "chatty: epoch 1 done",
        "chatty: epoch 2 done",
        "chatty: script imported",
        "chatty: epoch 3 done",
    ]
    _no_bar(proc.stdout)
    assert "chatty:" not in proc.stderr
    assert "3/3" in proc.stderr  # the bar, on stderr
    logs = sorted(p.name for p in (run_dir / "logs").iterdir())
    assert logs == ["segment-0001.log", "segment-0002.log"]  # the unused spare of no third segment left none
    first = (run_dir / "logs" / "segment-0001.log").read_text()
    assert _chatter(first), "the backend's start-up lines are kept in the log"
    assert "chatty: epoch 1 done" in first and "chatty: epoch 3 done" not in first
    assert "chatty: epoch 3 done" in (run_dir / "logs" / "segment-0002.log").read_text()


def test_run_the_scripts_stdout_is_segtrains_stdout_in_order_and_nothing_else(tmp_path):
    """`segtrain run s.py > out.txt`: the script's lines, in order, with the bar on; segtrain's own on stderr."""
    run_dir, out = tmp_path / "run", tmp_path / "out.txt"
    with open(out, "w") as stdout:
        proc = subprocess.run(
            segtrain_cmd("run", PRINTING, "--segment", 2, "--seed", 0, "--run-dir", run_dir),
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(COLUMNS="300"),
            timeout=300,
        )
    assert_exit(proc, 0, stdout=out.read_text())
    printed = out.read_text()
    _no_bar(printed)
    # Each worker's lines after the previous one's; the script's top once: the spares ran it again while a
    # segment trained, into their logs only.
    assert printed.splitlines() == _printed(6)
    err = proc.stderr.splitlines()
    assert err.count("printing: a note on stderr") == 1 and err.count("printing: done, on stderr") == 1
    assert err.index("printing: done, on stderr") < next(i for i, e in enumerate(err) if "segtrain run " in e)
    assert "6/6" in proc.stderr and "finished: finished all 6 epochs" in proc.stderr  # the bar, the table, the end
    assert "segment-0003.log" in {p.name for p in (run_dir / "logs").iterdir()}
    both = (run_dir / "logs" / "segment-0003.log").read_text()
    assert "printing: after fit" in both and "printing: done, on stderr" in both  # the log keeps both streams

    assert BEFORE in (run_dir / "logs" / "segment-0003.log").read_text()  # the third worker's top, in its log
    # The same lines as `python s.py > a.txt`.
    alone = subprocess.run(
        [sys.executable, PRINTING], capture_output=True, text=True, env=cli_env(), timeout=120, check=True
    )
    assert printed.splitlines() == alone.stdout.splitlines()


def test_verbose_shows_everything_and_quiet_only_errors_but_the_scripts_stdout(tmp_path):
    loud = run_cli(*fit_args("chatty", tmp_path / "loud", 1, 1), "--verbose")
    assert_exit(loud, 0)
    assert _chatter(loud.stderr) and "chatty: epoch 1 done" in loud.stdout
    quiet = run_cli(*fit_args("chatty", tmp_path / "quiet", 1, 1), "--quiet")
    assert_exit(quiet, 0)
    # --quiet silences segtrain (and a worker's stderr), not what the script prints on stdout.
    assert quiet.stdout == "chatty: script imported\nchatty: epoch 1 done\n" and quiet.stderr == ""
    both = run_cli(*fit_args("chatty", tmp_path / "both", 1, 1), "-v", "-q")
    assert_exit(both, 2)
    assert "--verbose and --quiet contradict each other" in both.stderr


def test_run_quiet_keeps_the_scripts_stdout_whole(tmp_path):
    proc = run_cli("run", PRINTING, "--segment", 3, "--seed", 0, "--run-dir", tmp_path / "run", "-q")
    assert_exit(proc, 0)
    assert proc.stdout.splitlines() == _printed(6) and proc.stderr == ""


def test_a_worker_that_dies_is_shown_with_its_last_lines_and_its_log(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(*fit_args("chatty", run_dir, 4, 2), env={"DIE_AT_EPOCH": "3"})
    assert_exit(proc, 1)
    log = run_dir / "logs" / "segment-0002.log"
    assert "was killed by signal 9 before finishing" in proc.stderr
    assert "| chatty: about to die" in proc.stderr
    assert f"Its log: {log}" in proc.stderr
    assert "chatty: about to die" in log.read_text()

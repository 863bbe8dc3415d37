"""`segtrain run`: an unmodified Keras script in segments, through the real CLI, real processes and real signals.

The script (tests/scripts/plain/train.py) is written as people write them:
arrays, `validation_split`, a callback of its own, `evaluate` and a print of
the history after `fit`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import (
    SCRIPTS,
    assert_bitwise_equal,
    assert_exit,
    cli_env,
    epochs_logged,
    final_variables,
    one_line,
    run_cli,
    segtrain_cmd,
    wait_for,
)
from segtrain.telemetry.event_file import event_files, read_events

pytestmark = pytest.mark.slow

PLAIN = SCRIPTS / "plain" / "train.py"
AFTER_FIT = re.compile(r"script: after fit (\{.*\})")


def run_args(run_dir: Path, segment: int | str, *script_args: object) -> list[object]:
    return ["run", PLAIN, "--segment", segment, "--seed", 0, "--run-dir", run_dir, "--no-progress", "--", *script_args]


def after_fit(output: str) -> list[dict]:
    """What the script printed after its fit() returned: one dict per time it got there."""
    return [json.loads(m[1]) for m in AFTER_FIT.finditer(output)]


@pytest.fixture(scope="module")
def one_segment(tmp_path_factory):
    """The script under `segtrain run` in one segment: the reference."""
    run_dir = tmp_path_factory.mktemp("one") / "run"
    proc = run_cli(*run_args(run_dir, 6))
    assert_exit(proc, 0)
    return run_dir, proc


def test_segments_equal_one_segment_and_the_script_goes_on_once(tmp_path, one_segment):
    reference, reference_proc = one_segment
    run_dir = tmp_path / "run"
    args = run_args(run_dir, 2)
    proc = run_cli(*args[: args.index("--")], "--tensorboard", "auto", *args[args.index("--") :])
    assert_exit(proc, 0)
    assert_bitwise_equal(final_variables(run_dir), final_variables(reference))
    # --tensorboard as on fit: segtrain's scalars, one per epoch, in RUN/tensorboard/segtrain.
    events = [e for path in event_files(run_dir / "tensorboard" / "segtrain") for e in read_events(path)]
    assert sorted(e.step for e in events if "epoch/seconds" in e.scalars) == [1, 2, 3, 4, 5, 6]

    output = proc.stdout + proc.stderr
    # Three workers ran the script's top (shown once: the others' is in their logs); only the last went on
    # after fit, with the whole run's history.
    assert output.count("script: loading data") == 1
    logs = [(run_dir / "logs" / f"segment-{i:04d}.log").read_text() for i in (1, 2, 3)]
    assert all("script: loading data" in log for log in logs)
    (after,) = after_fit(output)
    (reference_after,) = after_fit(reference_proc.stdout + reference_proc.stderr)
    assert after["epochs"] == [0, 1, 2, 3, 4, 5]
    assert after["seen"] == 6  # the script's own callback saw every epoch, across three processes
    assert after["loss"] == reference_after["loss"]
    assert output.count("script: evaluate loss=") == 1
    segments = [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]
    assert [(s["start_epoch"], s["end_epoch"]) for s in segments] == [(0, 2), (2, 4), (4, 6)]
    assert "val_loss" in segments[0]["final_logs"]  # validation_split held out a validation set

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["launched"] is True and manifest["config"]["epochs"] == 6  # the script's fit(epochs=)

    # load_model reads such a run without its script (the default .keras format stores the architecture).
    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved)
    shutil.rmtree(moved / "script")
    manifest["script"]["path"] = str(tmp_path / "gone.py")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    assert_bitwise_equal(final_variables(moved), final_variables(reference))


def test_kill_9_mid_run_then_the_same_command_equals_one_segment(tmp_path, one_segment):
    reference, _ = one_segment
    run_dir = tmp_path / "run"
    args = run_args(run_dir, 2)
    proc = subprocess.Popen(
        segtrain_cmd(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        start_new_session=True,
    )
    wait_for(lambda: epochs_logged(run_dir) >= 3, "the third epoch", proc, timeout=120)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its workers, at once
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert after_fit(out + err) == []  # killed before the end: the script never went on

    again = run_cli(*args)
    assert_exit(again, 0)
    assert_bitwise_equal(final_variables(run_dir), final_variables(reference))
    (after,) = after_fit(again.stdout + again.stderr)
    assert after["epochs"] == [0, 1, 2, 3, 4, 5] and after["seen"] == 6


def test_a_complete_run_runs_the_script_again_with_the_trained_model(tmp_path, one_segment):
    reference, reference_proc = one_segment
    records = (reference / "segments.jsonl").read_text()
    again = run_cli(*run_args(reference, 6))
    assert_exit(again, 0)
    (after,) = after_fit(again.stdout + again.stderr)
    (before,) = after_fit(reference_proc.stdout + reference_proc.stderr)
    assert after == before  # fit() returned the run's history at once
    assert re.findall(r"evaluate loss=\S+", again.stdout + again.stderr) == re.findall(
        r"evaluate loss=\S+", reference_proc.stdout + reference_proc.stderr
    )
    assert (reference / "segments.jsonl").read_text() == records  # nothing trained


def test_a_script_without_fit_says_what_to_do(tmp_path):
    no_fit = run_cli("run", SCRIPTS / "plain" / "no_fit.py", "--run-dir", tmp_path / "nofit", "--no-progress")
    assert_exit(no_fit, 2)
    assert "without calling model.fit(...)" in one_line(no_fit.stderr)
    assert "script: no fit here" in no_fit.stdout + no_fit.stderr

"""A run that a callback stopped stays stopped: the same command again returns at once and changes nothing.

`stops_early.py`'s EarlyStopping ends its 20 epochs after epoch 3. Running `fit`, `resume` or `segtrain run`
again must not train epoch 4 (issue 24); `resume --continue` trains on, as one process calling `fit` again
would (EarlyStopping's patience starts afresh), and equally in any segmentation; a kill -9 right at the
stop's checkpoint leaves a run that is still stopped.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import (
    SCRIPTS,
    assert_bitwise_equal,
    assert_exit,
    cli_env,
    final_variables,
    fit_args,
    one_line,
    run_cli,
    segtrain_cmd,
    wait_for,
)

pytestmark = pytest.mark.slow

EPOCHS = 20
STOP = "stopped early: EarlyStopping(monitor='loss', patience=2) at epoch 3"


def snapshot(run_dir: Path, skip: tuple[str, ...] = ("lock", "logs")) -> dict[str, bytes]:
    """Every file of the run directory (but its lock and worker logs) and its bytes."""
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.relative_to(run_dir).parts[0] not in skip
    }


def _fit(run_dir: Path, segment: int, out: Path | None = None, *more: object) -> subprocess.CompletedProcess:
    env = {"CALLBACK_OUT": str(out)} if out is not None else None
    return run_cli(*fit_args("stops_early", run_dir, EPOCHS, segment, "--seed", 3, *more), env=env)


def _history(run_dir: Path) -> dict[str, list[float]]:
    return json.loads((run_dir / "history.json").read_text())


def test_rerunning_fit_or_resume_on_a_stopped_run_changes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    first = _fit(run_dir, 2)
    assert_exit(first, 0)
    assert STOP in one_line(first.stderr)
    before = snapshot(run_dir)
    assert len(_history(run_dir)["loss"]) == 3
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "stopped"

    for _ in range(3):
        again = _fit(run_dir, 2)
        assert_exit(again, 0)
        assert STOP in one_line(again.stderr) and "stays stopped" in one_line(again.stderr)
        assert snapshot(run_dir) == before  # same checkpoint bytes, history, records, manifest
    resumed = run_cli("resume", run_dir, "--no-progress")
    assert_exit(resumed, 0)
    assert "--continue" in one_line(resumed.stderr)
    resumed_longer = run_cli("resume", run_dir, "--epochs", 30, "--no-progress")  # more epochs: still stopped
    assert_exit(resumed_longer, 0)
    assert "stays stopped" in one_line(resumed_longer.stderr)
    assert {k: v for k, v in snapshot(run_dir).items() if k != "manifest.json"} == {
        k: v for k, v in before.items() if k != "manifest.json"
    }


def _continued(base: Path, segment: int) -> tuple[Path, Path]:
    run_dir, out = base / f"run-{segment}", base / f"out-{segment}"
    out.mkdir(parents=True)
    assert_exit(_fit(run_dir, segment, out), 0)
    proc = run_cli("resume", run_dir, "--epochs", 8, "--continue", "--no-progress", env={"CALLBACK_OUT": str(out)})
    assert_exit(proc, 0)
    # Patience started afresh, as in a second fit() call: 3 more epochs, then EarlyStopping again.
    assert "stopped early: EarlyStopping(monitor='loss', patience=2) at epoch 6" in one_line(proc.stderr)
    return run_dir, out


def test_continue_trains_on_exactly_whatever_the_segments(tmp_path):
    reference, ref_out = _continued(tmp_path, EPOCHS)
    run_dir, out = _continued(tmp_path, 2)

    assert_bitwise_equal(final_variables(reference), final_variables(run_dir))
    history = _history(run_dir)
    assert history == _history(reference) and len(history["loss"]) == 6
    # CSVLogger(append=False) in a second fit() call starts its file again, as Keras does in one process.
    for log in (ref_out / "log.csv", out / "log.csv"):
        assert [row[0] for row in csv.reader(log.open())] == ["epoch", "3", "4", "5"]
    # And the continued run is stopped again: the same command changes nothing more.
    before = snapshot(run_dir)
    again = run_cli("resume", run_dir, "--no-progress")
    assert_exit(again, 0)
    assert snapshot(run_dir) == before


def test_kill_9_at_the_stops_checkpoint_leaves_a_stopped_run(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        segtrain_cmd(*fit_args("stops_early", run_dir, EPOCHS, EPOCHS, "--seed", 3)),
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    final = run_dir / "ckpt-000003-end" / "state.json"
    wait_for(final.exists, "the stop's checkpoint", proc, timeout=240, interval=0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the checkpoint is committed: its records may or may not follow
    proc.communicate()
    checkpoints = {k: v for k, v in snapshot(run_dir).items() if k.startswith("ckpt-")}

    again = _fit(run_dir, EPOCHS)
    assert_exit(again, 0)
    assert STOP in one_line(again.stderr)
    after = snapshot(run_dir)
    assert {k: v for k, v in after.items() if k.startswith("ckpt-")} == checkpoints
    assert len(_history(run_dir)["loss"]) == 3  # the history is the stop checkpoint's, written again if it was lost
    assert json.loads(after["manifest.json"])["status"] == "stopped"
    assert len(after["epochs.jsonl"].splitlines()) == 3
    assert _fit(run_dir, EPOCHS).returncode == 0 and snapshot(run_dir) == after


def test_a_launched_scripts_stopped_run_reruns_the_script_without_training(tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    args = ["run", SCRIPTS / "plain" / "stops_early.py", "--segment", 2, "--seed", 0, "--run-dir", run_dir]
    first = run_cli(*args, "--no-progress", "--", out)
    assert_exit(first, 0)
    kept = {k: v for k, v in snapshot(run_dir).items() if k != "manifest.json"}
    rows = (out / "log.csv").read_text()
    assert len(rows.splitlines()) == 1 + 3

    for _ in range(2):
        again = run_cli(*args, "--no-progress", "--", out)
        assert_exit(again, 0)
        # The script ran again, its fit() returning the recorded history at once.
        assert 'script: after fit {"epochs": 3}' in again.stdout + again.stderr
        assert "stopped early" in one_line(again.stderr)
        assert {k: v for k, v in snapshot(run_dir).items() if k != "manifest.json"} == kept
        assert (out / "log.csv").read_text() == rows  # CSVLogger wrote no 4th row


def _epochs(run_dir: Path) -> str:
    return (run_dir / "epochs.jsonl").read_text()


def test_a_sweep_killed_at_a_trials_stop_and_a_cv_rerun_train_nothing_again(tmp_path):
    script = SCRIPTS / "search_stops_early.py"
    sweep_dir = tmp_path / "sweep"
    args = ["sweep", script, "--trials", 2, "--epochs", 6, "--segment", 2, "--seed", 0, "--dir", sweep_dir]
    args += ["--metric", "loss", "--pruner", "none", "--isolation", "session", "--no-progress"]
    proc = subprocess.Popen(
        segtrain_cmd(*args), env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    stop = sweep_dir / "trials" / "trial-0000" / "ckpt-000002-end" / "state.json"
    wait_for(stop.exists, "trial 0's stop's checkpoint", proc, timeout=300, interval=0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the trial's stop is committed; the study may not have heard of it yet
    proc.communicate()

    for _ in range(2):
        again = run_cli(*args, timeout=600)
        assert_exit(again, 0)
        trials = json.loads(run_cli("report", sweep_dir, "--json").stdout)["trials"]
        assert [(t["number"], t["state"], t["epochs_done"]) for t in trials] == [(0, "COMPLETE", 2), (1, "COMPLETE", 2)]
        for number in (0, 1):  # each trial trained its two epochs once
            epochs = _epochs(sweep_dir / "trials" / f"trial-{number:04d}").splitlines()
            assert [json.loads(line)["epoch"] for line in epochs] == [0, 1]

    cv_dir = tmp_path / "cv"
    cv_args = ["cv", script, "--folds", 2, "--epochs", 6, "--segment", 2, "--seed", 0, "--dir", cv_dir]
    assert_exit(run_cli(*cv_args, "--isolation", "session", "--no-progress", timeout=600), 0)
    folds = [cv_dir / "folds" / f"fold-{i}" for i in range(2)]
    before = [snapshot(fold) for fold in folds]
    assert [len(_history(fold)["loss"]) for fold in folds] == [2, 2]
    rerun = run_cli(*cv_args, "--isolation", "session", "--no-progress", timeout=600)
    assert_exit(rerun, 0)
    assert [snapshot(fold) for fold in folds] == before
    assert [f["status"] for f in json.loads(run_cli("report", cv_dir, "--json").stdout)["folds"]] == ["stopped"] * 2

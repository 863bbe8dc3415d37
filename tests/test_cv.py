"""`segtrain cv`: folds made by segtrain or by the script, each fold a run of its own, resumable."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import SCRIPTS, assert_bitwise_equal, cli_env, final_variables, run_cli, segtrain_cmd, wait_for
from segtrain.telemetry.event_file import event_files, read_events
from segtrain.training.data import Fold, prepare

SCRIPT = SCRIPTS / "cv_mlp.py"


def test_folds_partition_the_samples_shuffled_and_seeded():
    n, k = 103, 4
    validations = [Fold(i, k, seed=7).split(n)[1] for i in range(k)]
    assert sorted(np.concatenate(validations).tolist()) == list(range(n))  # each sample validates once
    assert [len(v) for v in validations] == [26, 26, 26, 25]
    for i, val in enumerate(validations):
        train, again = Fold(i, k, seed=7).split(n)
        assert np.array_equal(val, again) and not set(train) & set(val) and len(train) + len(val) == n
    assert not np.array_equal(validations[0], np.arange(26))  # shuffled, not the first samples
    assert not np.array_equal(validations[0], Fold(0, k, seed=8).split(n)[1])  # the seed chooses the split


def test_prepare_splits_arrays_without_validation_and_keeps_a_scripts_own_split():
    x = np.arange(40, dtype="float32").reshape(20, 2)
    y = np.arange(20, dtype="float32")
    data = prepare((x, y), {"batch_size": 4}, 0, Path("s.py"), Fold(1, 4, seed=3))
    val_x, val_y = data.validation
    assert len(val_y) == 5 and data.train.num_samples == 15
    assert np.array_equal(val_x[:, 0] / 2, val_y)  # rows stay whole
    assert np.array_equal(val_y, Fold(1, 4, seed=3).split(20)[1])
    own = prepare(((x[:15], y[:15]), (x[15:], y[15:])), {"batch_size": 4}, 0, Path("s.py"), Fold(1, 4, seed=3))
    assert own.train.num_samples == 15 and np.array_equal(own.validation[1], y[15:])


def _report(cv_dir: Path) -> dict:
    proc = run_cli("report", cv_dir, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_cv_trains_each_fold_in_its_own_run_and_goes_on_after_a_stop(tmp_path):
    cv_dir = tmp_path / "cv"
    args = ["cv", SCRIPT, "--folds", 3, "--epochs", 4, "--segment", 2, "--seed", 5, "--dir", cv_dir, "--no-progress"]
    args += ["--tensorboard", "auto"]
    proc = subprocess.Popen(
        segtrain_cmd(*args), env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    second = cv_dir / "folds" / "fold-1"
    wait_for(lambda: any(second.glob("ckpt-000002*")), "fold 1's first checkpoint", proc, timeout=300, interval=0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75, stderr[-3000:]
    first_epochs = (cv_dir / "folds" / "fold-0" / "epochs.jsonl").read_text()

    done = run_cli(*args, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (cv_dir / "folds" / "fold-0" / "epochs.jsonl").read_text() == first_epochs  # not trained again
    rep = _report(cv_dir)
    assert [(f["fold"], f["status"], f["epochs_done"]) for f in rep["folds"]] == [
        (0, "finished", 4),
        (1, "finished", 4),
        (2, "finished", 4),
    ]
    losses = [f["metrics"]["val_loss"] for f in rep["folds"]]
    assert rep["mean"]["val_loss"] == pytest.approx(np.mean(losses))
    assert rep["std"]["val_loss"] == pytest.approx(np.std(losses, ddof=1))
    manifests = [json.loads((cv_dir / "folds" / f"fold-{i}" / "manifest.json").read_text()) for i in range(3)]
    assert [m["config"]["params"] for m in manifests] == [{"fold": i, "folds": 3} for i in range(3)]
    assert "val_loss" in done.stderr and "±" in done.stderr
    # --tensorboard auto: each fold's scalars in its own run directory, a point per epoch (over the stop too).
    for i in range(3):
        board = cv_dir / "folds" / f"fold-{i}" / "tensorboard" / "segtrain"
        events = [e for path in event_files(board) for e in read_events(path)]
        assert sorted(e.step for e in events if "epoch/seconds" in e.scalars) == [1, 2, 3, 4]


def _first_segment(run_dir: Path) -> dict:
    return json.loads((run_dir / "segments.jsonl").read_text().splitlines()[0])


@pytest.mark.slow
def test_a_fold_prepared_while_the_one_before_trains_equals_one_started_cold(tmp_path):
    """The next fold's worker builds and traces its model while the fold before trains, and sets its state back
    (weights, seed states, Python's and NumPy's generators): the fold trains as if built by its own worker."""
    common = ["--folds", 2, "--epochs", 2, "--segment", 2, "--seed", 5, "--no-progress"]
    ahead, cold = tmp_path / "ahead", tmp_path / "cold"
    for cv_dir, more in ((ahead, []), (cold, ["--no-prestart"])):
        proc = run_cli("cv", SCRIPT, *common, "--dir", cv_dir, *more, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    fold = Path("folds") / "fold-1"
    prepared, started_cold = (_first_segment(d / fold) for d in (ahead, cold))
    assert prepared["prestarted"] and prepared["warm_up_seconds"] is not None
    assert not started_cold["prestarted"] and started_cold["warm_up_seconds"] is None
    assert_bitwise_equal(final_variables(ahead / fold), final_variables(cold / fold))
    assert (ahead / fold / "history.json").read_text() == (cold / fold / "history.json").read_text()


@pytest.mark.slow
def test_a_script_that_splits_itself_reads_the_fold_from_its_params(tmp_path):
    cv_dir = tmp_path / "cv"
    proc = run_cli(
        "cv",
        SCRIPT,
        "--folds",
        2,
        "--epochs",
        1,
        "--segment",
        1,
        "--dir",
        cv_dir,
        "--isolation",
        "session",
        "--no-progress",
        env={"CV_OWN_SPLIT": "1"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for fold in range(2):
        line = json.loads((cv_dir / "folds" / f"fold-{fold}" / "epochs.jsonl").read_text().splitlines()[0])
        assert line["steps"] == 6  # 96 training samples in batches of 16: the script's split (segtrain's: 120)


def test_cv_refuses_params_it_sets_itself(tmp_path):
    proc = run_cli(
        "cv", SCRIPT, "--folds", 2, "--epochs", 1, "--segment", 1, "--dir", tmp_path / "cv", "--param", "fold=3"
    )
    assert proc.returncode == 2 and "segtrain cv sets params['fold']" in proc.stderr

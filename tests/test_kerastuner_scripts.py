"""`segtrain run` on a KerasTuner script, unmodified: every trial's executions in worker processes of their own.

examples/kerastuner_search.py is keras.io's "Getting started with KerasTuner" (`build_model(hp)`,
`RandomSearch(..., executions_per_trial=2, overwrite=True)`, `tuner.search(...)`, `get_best_models()`,
`results_summary()`) on synthetic data. Through the real CLI, real processes, KerasTuner's own project on
disk and a real kill -9.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, assert_exit, cli_env, epochs_logged, run_cli, segtrain_cmd, wait_for, with_jobs

pytestmark = pytest.mark.slow

SEARCH = ROOT / "examples" / "kerastuner_search.py"
TRIALS, EPOCHS = 3, 2


def args(run_dir: Path, segment: int, *script_args: object, script: Path = SEARCH) -> list[object]:
    return ["run", script, "--segment", segment, "--seed", 0, "--run-dir", run_dir, "--no-progress", "--",
            "--trials", TRIALS, "--epochs", EPOCHS, "--directory", run_dir.parent / "tuner", *script_args]  # fmt: skip


def trained_once(trial_run: Path) -> bool:
    """Whether the trial's run trained its first epoch once: one resumed from a checkpoint, not from scratch."""
    records = [json.loads(line) for line in (trial_run / "epochs.jsonl").read_text().splitlines()]
    return [r["epoch"] for r in records].count(0) == 1


def hyperband_script(folder: Path) -> Path:
    """The example with keras.io's other tuner: Hyperband (3 trials of 1 epoch, the best goes on to epoch 3,
    then 2 trials of 3 epochs), one execution per trial."""
    script = folder / "hyperband.py"
    script.write_text(
        SEARCH.read_text()
        .replace("keras_tuner.RandomSearch(", "keras_tuner.Hyperband(max_epochs=3, factor=3, ")
        .replace("    max_trials=args.trials,\n", "")
        .replace("executions_per_trial=2", "executions_per_trial=1")
    )  # fmt: skip
    return script


def trials(run_dir: Path) -> list[tuple[str, dict, float]]:
    """Each trial of KerasTuner's project: its status, hyperparameters and score, as KerasTuner wrote them."""
    found = []
    for path in sorted((run_dir.parent / "tuner" / "helloworld").glob("trial_*/trial.json")):
        trial = json.loads(path.read_text())
        found.append((trial["status"], trial["hyperparameters"]["values"], trial["score"]))
    return found


def untimed(output: str) -> str:
    """The output but for the durations KerasTuner shows, and the model summary's table (rich sizes it)."""
    lines = [line for line in output.splitlines() if not set(line) & set("━┃│─┏┓┗┛┡┩└┘┌┐┳┻╇")]
    return re.sub(r"\d\dh \d\dm \d\ds", "..h ..m ..s", "\n".join(lines))


def best_weights(run_dir: Path) -> list:
    """The best trial's best-epoch weights, as KerasTuner's SaveBestEpoch wrote them (what get_best_models loads)."""
    import h5py

    project = run_dir.parent / "tuner" / "helloworld"
    best = max((json.loads(p.read_text()) for p in project.glob("trial_*/trial.json")), key=lambda t: t["score"])
    arrays: list = []
    with h5py.File(project / f"trial_{best['trial_id']}" / "checkpoint.weights.h5") as f:
        f.visititems(lambda name, item: arrays.append((name, item[()])) if isinstance(item, h5py.Dataset) else None)
    return arrays


def assert_same_weights(a: list, b: list) -> None:
    import numpy as np

    assert [name for name, _ in a] == [name for name, _ in b] and a
    for (name, x), (_, y) in zip(a, b, strict=True):
        assert np.array_equal(x, y), f"{name} differs"


@pytest.fixture(scope="module")
def whole_trials(tmp_path_factory):
    """Each execution in one segment: the reference."""
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    proc = run_cli(*args(run_dir, EPOCHS))
    assert_exit(proc, 0)
    return run_dir, proc


def test_segments_of_1_give_the_same_trials_best_weights_and_output(tmp_path, whole_trials):
    reference, reference_proc = whole_trials
    run_dir = tmp_path / "run"
    proc = run_cli(*args(run_dir, 1))
    assert_exit(proc, 0)
    found = trials(run_dir)
    assert found == trials(reference)
    assert [status for status, *_ in found] == ["COMPLETED"] * TRIALS
    assert_same_weights(best_weights(run_dir), best_weights(reference))
    # Each trial a run, each of its two executions a stage of it, in segments of one epoch.
    for trial in sorted((run_dir / "trials").iterdir()):
        for stage in (trial, trial / "stages" / "stage-2"):
            assert len((stage / "segments.jsonl").read_text().splitlines()) == EPOCHS
    # The script's own lines, once each: KerasTuner's per-trial display, then what it prints after search
    # (the same but for durations and the summary's table widths).
    assert untimed(proc.stdout.replace(str(tmp_path), "T")) == untimed(
        reference_proc.stdout.replace(str(reference.parent), "T")
    )
    assert proc.stdout.count("Search: Running Trial #") == TRIALS and proc.stdout.count("best val_accuracy:") == 1
    assert "Results in " in proc.stdout and "finished: the script's search ran 3 trials" in proc.stderr


def test_kill_9_mid_trial_then_the_same_command_goes_on_with_that_trial(tmp_path, whole_trials):
    reference, _ = whole_trials
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(segtrain_cmd(*args(run_dir, 1)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cli_env(), start_new_session=True)  # fmt: skip
    halfway = run_dir / "trials" / "trial-0001" / "stages" / "stage-2" / "ckpt-000001" / "state.json"
    wait_for(halfway.exists, "trial 1's second execution", proc, timeout=300)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    again = run_cli(*args(run_dir, 1))  # overwrite=True in the script: the search is reloaded all the same
    assert_exit(again, 0)
    assert trials(run_dir) == trials(reference)
    assert_same_weights(best_weights(run_dir), best_weights(reference))
    resumed = (run_dir / "trials" / "trial-0001" / "stages" / "stage-2" / "segments.jsonl").read_text()
    assert '"resumed_from": "ckpt-000001"' in resumed  # the interrupted execution went on from its checkpoint
    assert again.stdout.count("best val_accuracy:") == 1


def test_a_tuner_with_its_own_run_trial_is_refused_before_training(tmp_path):
    script = tmp_path / "own_loop.py"
    script.write_text(
        SEARCH.read_text()
        .replace("tuner = keras_tuner.RandomSearch(", "class Mine(keras_tuner.RandomSearch):\n"
                 "    def run_trial(self, trial, *args, **kwargs):\n        return 0.5\n\n\ntuner = Mine(")
    )  # fmt: skip
    own = run_cli("run", script, "--run-dir", tmp_path / "own", "--no-progress", "--", "--directory", tmp_path / "t1")
    assert_exit(own, 2)
    assert "Mine overrides run_trial()" in own.stderr and "run this script with python" in own.stderr

    assert not (tmp_path / "own" / "trials").exists()


def test_hyperband_trials_go_on_from_the_earlier_trials_weights_and_survive_kill_9(tmp_path):
    """Hyperband's second round builds the best first-round trial's model from its best-epoch weights (in the
    project) and fits it from `initial_epoch`: segments of 1, a kill -9 in that trial and the same command
    again give the trials and best weights of whole trials."""
    script = hyperband_script(tmp_path)
    reference = tmp_path / "whole" / "run"
    whole = run_cli(*args(reference, 3, script=script))
    assert_exit(whole, 0)

    run_dir = tmp_path / "segmented" / "run"
    cmd = segtrain_cmd(*args(run_dir, 1, script=script))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
                            start_new_session=True)  # fmt: skip
    halfway = run_dir / "trials" / "trial-0003" / "ckpt-000001" / "state.json"
    wait_for(halfway.exists, "the second round's trial, one epoch in", proc, timeout=300)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    again = run_cli(*args(run_dir, 1, script=script))
    assert_exit(again, 0)

    found = trials(run_dir)
    assert found == trials(reference) and [status for status, *_ in found] == ["COMPLETED"] * 6
    went_on = found[3][1]  # the first round's best, from its epoch 1 to 3
    assert went_on["tuner/trial_id"] in ("0000", "0001", "0002") and went_on["tuner/initial_epoch"] == 1
    assert_same_weights(best_weights(run_dir), best_weights(reference))
    # The trial that went on trained Keras' epochs 2 and 3 as its run's epochs 0 and 1, and went on from the
    # checkpoint the kill left.
    went_on_run = run_dir / "trials" / "trial-0003"
    assert epochs_logged(went_on_run) == 2 and trained_once(went_on_run)
    assert again.stdout.count("best val_accuracy:") == 1 and "Results in " in again.stdout


def test_jobs_2_share_kerastuners_oracle_and_a_kill_9_then_the_same_command_ends_with_each_trial_once(tmp_path):
    """Two processes drive one Hyperband search through KerasTuner's own chief (lane 0) and worker (lane 1)."""
    script = hyperband_script(tmp_path)
    run_dir = tmp_path / "run"
    command = with_jobs(args(run_dir, 1, script=script), 2)
    proc = subprocess.Popen(segtrain_cmd(*command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(), start_new_session=True)  # fmt: skip

    def three_epoch_trial_mid_way() -> bool:
        return any(t.exists() for t in run_dir.glob("trials/trial-000[3-5]/ckpt-000001/state.json"))

    wait_for(three_epoch_trial_mid_way, "a 3-epoch trial's first checkpoint", proc, timeout=300)
    os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert "best val_accuracy:" not in out
    interrupted = [t for t in run_dir.glob("trials/trial-*") if (t / "ckpt-000001").is_dir()]
    assert interrupted

    again = run_cli(*command)
    assert_exit(again, 0)
    found = trials(run_dir)
    assert [status for status, *_ in found] == ["COMPLETED"] * 6  # each trial once: none again, none lost
    assert sorted(p.name for p in (run_dir / "trials").iterdir()) == [f"trial-{n:04d}" for n in range(6)]
    assert any(values.get("tuner/initial_epoch") == 1 for _, values, _ in found)  # a second round went on
    assert (run_dir.parent / "tuner" / "helloworld" / "tuner1.json").exists()  # the second process drove trials
    assert all(trained_once(trial) for trial in interrupted)  # went on from the kill's checkpoint, as the same trial
    assert again.stdout.count("best val_accuracy:") == 1 and "ran in 2 processes" in again.stderr


def test_bayesian_optimization_gives_the_same_trials_whatever_the_segments(tmp_path):
    """keras.io's third tuner: its Gaussian process proposes the third trial from the first two's scores."""
    script = tmp_path / "bayesian.py"
    script.write_text(
        SEARCH.read_text()
        .replace("keras_tuner.RandomSearch(", "keras_tuner.BayesianOptimization(num_initial_points=2, ")
        .replace("executions_per_trial=2", "executions_per_trial=1")
    )  # fmt: skip
    runs = {segment: tmp_path / f"seg{segment}" / "run" for segment in (1, EPOCHS)}
    for segment, run_dir in runs.items():
        assert_exit(run_cli(*args(run_dir, segment, script=script)), 0)
    found = trials(runs[1])
    assert found == trials(runs[EPOCHS]) and [status for status, *_ in found] == ["COMPLETED"] * TRIALS
    assert_same_weights(best_weights(runs[1]), best_weights(runs[EPOCHS]))

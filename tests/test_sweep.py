"""`segtrain sweep`: trials in fresh workers, exactly resumable, crash-safe, shared between processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import SCRIPTS, assert_bitwise_equal, cli_env, final_variables, run_cli, segtrain_cmd, wait_for
from segtrain.telemetry.event_file import event_files, read_events
from segtrain.worker.output import CHATTER
from support.postgres import PostgresServer

pytestmark = pytest.mark.slow
SCRIPT = SCRIPTS / "sweep_mlp.py"


def sweep_args(sweep_dir: Path, trials: int, epochs: int, segment: int, *more: object) -> list[object]:
    return [
        "sweep",
        SCRIPT,
        "--trials",
        trials,
        "--epochs",
        epochs,
        "--segment",
        segment,
        "--dir",
        sweep_dir,
        "--no-progress",
        *more,
    ]


def report(sweep_dir: Path, *more: object) -> dict:
    proc = run_cli("report", sweep_dir, "--json", *more)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def epochs_logged(run_dir: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run_dir / "epochs.jsonl").read_text().splitlines()]


def test_trials_are_runs_equal_to_fit_with_their_params_and_load_model_takes_the_best(tmp_path):
    sweep_dir, board = tmp_path / "sweep", tmp_path / "board"
    args = sweep_args(sweep_dir, 2, 4, 2, "--seed", 3, "--pruner", "none", "--tensorboard", board)
    proc = run_cli(*args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [line for line in proc.stderr.splitlines() if CHATTER.match(line)] == []  # the backend's, in the logs
    # --tensorboard DIR: each trial a TensorBoard run of its own, DIR/trial-NNNN/segtrain, a point per epoch.
    for number in (0, 1):
        events = [e for path in event_files(board / f"trial-{number:04d}" / "segtrain") for e in read_events(path)]
        assert sorted(e.step for e in events if "epoch/seconds" in e.scalars) == [1, 2, 3, 4]
    assert len([line for line in proc.stderr.splitlines() if line.startswith("segtrain: trial ")]) == 2
    rep = report(sweep_dir)
    assert [t["number"] for t in rep["trials"]] == [0, 1]
    assert {t["state"] for t in rep["trials"]} == {"COMPLETE"}
    assert all(t["epochs_done"] == 4 and t["peak_rss_mb"] > 0 and t["seconds"] > 0 for t in rep["trials"])
    values = [t["value"] for t in rep["trials"]]
    assert rep["best"]["value"] == min(values) and rep["best"]["run_dir"].endswith(f"trial-{rep['best']['number']:04d}")
    # Each trial is a run directory of its own, in segments of 2, in fresh processes.
    trial = Path(rep["trials"][1]["run_dir"])
    segments = [json.loads(line) for line in (trial / "segments.jsonl").read_text().splitlines()]
    assert [(s["start_epoch"], s["end_epoch"]) for s in segments] == [(0, 2), (2, 4)]
    assert len({s["pid"] for s in segments}) == 2
    # It was asked for while trial 0 trained: its worker built and traced its model then, and set it back.
    assert segments[0]["prestarted"] and segments[0]["warm_up_seconds"] is not None
    # The trial's model is what `segtrain fit --param ... --seed 3` gives, unsegmented and in one process.
    params = rep["trials"][1]["params"]
    alone = tmp_path / "alone"
    param_args = [a for k, v in params.items() for a in ("--param", f"{k}={json.dumps(v)}")]
    proc = run_cli(
        "fit",
        SCRIPT,
        "--epochs",
        4,
        "--segment",
        4,
        "--seed",
        3,
        "--run-dir",
        alone,
        "--isolation",
        "session",
        "--no-progress",
        *param_args,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_bitwise_equal(final_variables(trial), final_variables(alone))
    # load_model on the sweep directory is the best trial's model.
    assert_bitwise_equal(final_variables(sweep_dir), final_variables(Path(rep["best"]["run_dir"])))
    # Running the finished sweep again trains nothing more.
    again = run_cli(*args, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(report(sweep_dir)["trials"]) == 2


def test_an_interrupted_trial_goes_on_from_its_checkpoint_as_the_same_trial(tmp_path):
    """The sweep and its workers killed at once, as a node failure would (SIGTERM's save and exit 75 are fit's)."""
    sweep_dir = tmp_path / "sweep"
    args = sweep_args(sweep_dir, 2, 4, 2, "--seed", 0, "--pruner", "none")
    proc = subprocess.Popen(
        segtrain_cmd(*args),
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    second = sweep_dir / "trials" / "trial-0001"
    wait_for(lambda: any(second.glob("ckpt-000002*")), "trial 1's first checkpoint", proc, timeout=300, interval=0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    before = report(sweep_dir)
    assert [(t["number"], t["state"]) for t in before["trials"]][:2] == [(0, "COMPLETE"), (1, "RUNNING")]

    resumed = run_cli(*args, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = report(sweep_dir)
    assert [(t["number"], t["state"]) for t in after["trials"]] == [(0, "COMPLETE"), (1, "COMPLETE")]
    segments = [json.loads(line) for line in (second / "segments.jsonl").read_text().splitlines()]
    assert any(s["resumed_from"] and s["resumed_from"].startswith("ckpt-000002") for s in segments)
    assert epochs_logged(second)[:2] == [0, 1]  # the first two epochs were not trained again
    assert sorted(set(epochs_logged(second))) == list(range(4))


def test_a_trial_claimed_ahead_when_the_sweep_stops_is_trained_by_the_next_sweep_once(tmp_path):
    """The next trial is claimed and its run opened while the current one trains its last segment; a stop then
    leaves it running in the study, untrained, and the same command trains it, from the start, as that trial.
    (Trial 1 is slow: the stop must come while it trains, not after trial 2 has begun.)"""
    sweep_dir = tmp_path / "sweep"
    args = sweep_args(sweep_dir, 3, 4, 2, "--seed", 0, "--pruner", "none")
    plan = {"SWEEP_PLAN": "good,slow"}
    proc = subprocess.Popen(
        segtrain_cmd(*args), env=cli_env(**plan), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    third = sweep_dir / "trials" / "trial-0002"
    wait_for(lambda: (third / "manifest.json").exists(), "trial 2 asked for ahead", proc, timeout=300, interval=0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75, stderr[-3000:]
    before = {t["number"]: t for t in report(sweep_dir)["trials"]}
    assert before[2]["state"] == "RUNNING" and not (third / "epochs.jsonl").exists()

    resumed = run_cli(*args, env=plan, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = report(sweep_dir)
    assert [(t["number"], t["state"]) for t in after["trials"]] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")]
    assert before[2]["params"] and after["trials"][2]["params"] == before[2]["params"]
    assert epochs_logged(third) == [0, 1, 2, 3]  # trained once, from its start


def test_pruned_and_failed_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    sweep_dir = tmp_path / "sweep"
    plan = "good,good,good,good,good,bad,boom,nan"
    proc = run_cli(
        *sweep_args(sweep_dir, 7, 4, 4, "--seed", 1, "--isolation", "session"), env={"SWEEP_PLAN": plan}, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = {t["number"]: t for t in report(sweep_dir)["trials"]}
    assert trials[5]["state"] == "PRUNED" and trials[5]["epochs_done"] < 4, trials[5]
    assert trials[6]["state"] == "FAIL" and "no model with" in trials[6]["reason"]
    assert trials[7]["state"] == "FAIL" and "loss became nan" in trials[7]["reason"]
    finished = [t for t in trials.values() if t["state"] in ("COMPLETE", "PRUNED")]
    assert len(finished) == 7 and len(trials) == 9
    status = json.loads((Path(trials[5]["run_dir"]) / "manifest.json").read_text())
    assert status["status"] == "stopped" and "pruned by Optuna's median pruner" in status["stop_reason"]
    table = run_cli("report", sweep_dir)
    assert "trial 5 pruned: stopped early: pruned by Optuna's median pruner" in table.stdout
    assert "trial 6 fail: " in table.stdout


@pytest.mark.parametrize(
    "case, more, message",
    [
        ("no search space", ["--metric", "loss"], "defines no function `search_space(trial)`"),
        ("bad storage", ["--storage", "nosuchdb://x"], "Cannot open the study storage nosuchdb://x"),
        ("metric not logged", ["--metric", "val_auc"], "--metric val_auc is not among what training logs"),
    ],
)
def test_bad_input_is_exit_2_naming_what_to_fix(tmp_path, case, more, message):
    script = SCRIPT
    if case == "no search space":
        script = tmp_path / "plain.py"
        script.write_text(SCRIPT.read_text().replace("def search_space(", "def not_a_search_space("))
    args = ["sweep", script, "--trials", 1, "--epochs", 1, "--segment", 1, "--dir", tmp_path / "s", "--no-progress"]
    proc = run_cli(*args, *more, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert message in proc.stderr


def test_two_sweep_processes_share_a_postgresql_study_and_never_train_a_trial_twice(tmp_path):
    with PostgresServer(Path(tempfile.mkdtemp(prefix="segtrain-pg-"))) as url:
        sweep_dir = tmp_path / "sweep"
        args = sweep_args(sweep_dir, 4, 2, 2, "--storage", url, "--pruner", "none", "--isolation", "session")
        procs = [
            subprocess.Popen(
                segtrain_cmd(*args), env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=600) for p in procs]
        for p, (_, stderr) in zip(procs, outputs, strict=True):
            assert p.returncode == 0, stderr[-3000:]
        rep = report(sweep_dir, "--storage", url)
    states = [(t["number"], t["state"]) for t in rep["trials"]]
    assert states == [(n, "COMPLETE") for n in range(4)]
    pids = set()
    for t in rep["trials"]:
        run_dir = Path(t["run_dir"])
        assert epochs_logged(run_dir) == [0, 1]  # each epoch of each trial trained once
        pids |= {json.loads(line)["pid"] for line in (run_dir / "epochs.jsonl").read_text().splitlines()}
    assert len(pids) == 2  # both processes trained trials (session isolation: the sweep process trains)
    assert "postgresql" in json.loads((sweep_dir / "sweep.json").read_text())["config"]["storage"]


def test_jobs_train_trials_at_once_on_the_sweeps_own_sqlite_study(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(
        *sweep_args(sweep_dir, 4, 2, 2, "--jobs", 2, "--pruner", "none", "--isolation", "session"), timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "segtrain[job 0]" in proc.stderr and "segtrain[job 1]" in proc.stderr
    rep = report(sweep_dir)
    assert [(t["number"], t["state"]) for t in rep["trials"]] == [(n, "COMPLETE") for n in range(4)]
    pids = {
        json.loads(line)["pid"]
        for t in rep["trials"]
        for line in (Path(t["run_dir"]) / "epochs.jsonl").read_text().splitlines()
    }
    assert len(pids) == 2

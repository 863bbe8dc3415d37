"""`segtrain run` on an Optuna search script, unmodified: every trial in worker processes of its own.

tests/scripts/plain/optuna_search.py is written as Optuna's Keras example writes it (`objective(trial)`
builds, fits and evaluates a model; `optuna.create_study(...)`, `study.optimize(objective, n_trials=...)`,
then the best trial printed), with synthetic data and a seeded sampler. Through the real CLI, real
processes, a real SQLite study and a real kill -9.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, assert_bitwise_equal, assert_exit, cli_env, final_variables, run_cli, segtrain_cmd

pytestmark = pytest.mark.slow

SEARCH = ROOT / "examples" / "optuna_search.py"
TRIALS, EPOCHS = 4, 4


def args(run_dir: Path, segment: int, *script_args: object) -> list[object]:
    return ["run", SEARCH, "--segment", segment, "--seed", 0, "--run-dir", run_dir, "--no-progress", "--",
            "--trials", TRIALS, "--epochs", EPOCHS, *script_args]  # fmt: skip


def trials(run_dir: Path) -> list[tuple[str, dict, float | None, dict]]:
    """Each trial of the run's study: its state, params, value and user attrs."""
    import optuna

    study = optuna.load_study(study_name=SEARCH.stem, storage=f"sqlite:///{run_dir / 'study.db'}")
    return [(t.state.name, t.params, t.value, t.user_attrs) for t in study.trials]


@pytest.fixture(scope="module")
def whole_trials(tmp_path_factory):
    """Each trial in one segment: the reference."""
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    proc = run_cli(*args(run_dir, EPOCHS))
    assert_exit(proc, 0)
    return run_dir, proc


def best(run_dir: Path) -> Path:
    import optuna

    study = optuna.load_study(study_name=SEARCH.stem, storage=f"sqlite:///{run_dir / 'study.db'}")
    return run_dir / "trials" / f"trial-{study.best_trial.number:04d}"


def test_segments_of_2_give_the_same_trials_and_best_model_and_the_script_prints_once(tmp_path, whole_trials):
    reference, reference_proc = whole_trials
    run_dir = tmp_path / "run"
    proc = run_cli(*args(run_dir, 2))
    assert_exit(proc, 0)
    found = trials(run_dir)
    assert found == trials(reference)
    assert [state for state, *_ in found] == ["COMPLETE"] * TRIALS
    assert len({str(params) for _, params, _, _ in found}) == TRIALS  # the sampler drew anew for each trial
    assert all("val_loss" in attrs for *_, attrs in found)  # trial.set_user_attr reached the study
    assert_bitwise_equal(final_variables(best(run_dir)), final_variables(best(reference)))
    assert sorted(p.name for p in (run_dir / "trials").iterdir()) == [f"trial-{n:04d}" for n in range(TRIALS)]
    assert [len((t / "segments.jsonl").read_text().splitlines()) for t in sorted((run_dir / "trials").iterdir())] == (
        [EPOCHS // 2] * TRIALS
    )
    # The script's lines after the search, once, on stdout; Optuna's log on stderr, a line per trial.
    assert proc.stdout == reference_proc.stdout
    assert proc.stdout.startswith(f"Number of finished trials: {TRIALS}\nBest trial:\n  Value: ")
    assert proc.stderr.count("finished with value") == TRIALS


def test_kill_9_mid_trial_then_the_same_command_goes_on_with_that_trial(tmp_path, whole_trials):
    reference, reference_proc = whole_trials
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        segtrain_cmd(*args(run_dir, 2)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        start_new_session=True,
    )
    halfway = run_dir / "trials" / "trial-0002" / "ckpt-000002"
    deadline = time.monotonic() + 300
    while not halfway.exists():
        assert time.monotonic() < deadline, "the search did not reach trial 2's first checkpoint"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent, the driver and the trial's workers, at once
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL and "Best trial" not in out
    assert [state for state, *_ in trials(run_dir)] == ["COMPLETE", "COMPLETE", "RUNNING"]

    again = run_cli(*args(run_dir, 2))
    assert_exit(again, 0)
    assert trials(run_dir) == trials(reference)  # trial 2 went on as trial 2; the search ended at 4 trials
    assert_bitwise_equal(final_variables(best(run_dir)), final_variables(best(reference)))
    resumed = (run_dir / "trials" / "trial-0002" / "segments.jsonl").read_text().splitlines()
    assert '"resumed_from": "ckpt-000002"' in resumed[-1]  # from its checkpoint, not from scratch
    assert again.stdout == reference_proc.stdout


def test_pruned_trials_are_pruned_alike_force_starts_over_and_n_jobs_is_refused(tmp_path):
    runs = {segment: tmp_path / f"seg{segment}" for segment in (1, EPOCHS)}
    for segment, run_dir in runs.items():
        proc = run_cli(*args(run_dir, segment, "--prune", "--trials", 6))
        assert_exit(proc, 0)
    found = trials(runs[1])
    assert found == trials(runs[EPOCHS])
    assert "PRUNED" in [state for state, *_ in found]  # the median rule pruned some, from inside fit

    # --force starts the search over: its study, trials and records go (else the same command goes on with them).
    again = args(runs[EPOCHS], EPOCHS, "--trials", 2)
    forced = run_cli(*again[: again.index("--")], "--force", *again[again.index("--") :])
    assert_exit(forced, 0)
    assert len(trials(runs[EPOCHS])) == 2 and not (runs[EPOCHS] / "trials" / "trial-0002").exists()

    jobs = run_cli(*args(tmp_path / "jobs", 2, "--jobs", 2))
    assert_exit(jobs, 2)
    assert "study.optimize(n_jobs=2)" in jobs.stderr and "leave n_jobs out" in jobs.stderr

"""`segtrain run` on an Optuna search script, unmodified: every trial in worker processes of its own.

examples/optuna_search.py is written as Optuna's Keras example writes it (`objective(trial)`
builds, fits and evaluates a model; `optuna.create_study(...)`, `study.optimize(objective, n_trials=...)`,
then the best trial printed), with synthetic data and a seeded sampler. Through the real CLI, real
processes, a real SQLite study and a real kill -9.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import (
    ROOT,
    assert_bitwise_equal,
    assert_exit,
    cli_env,
    final_variables,
    one_line,
    run_cli,
    segtrain_cmd,
    wait_for,
    with_jobs,
)
from segtrain.paths import RunPaths
from segtrain.state import checkpoint

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
    wait_for(halfway.exists, "trial 2's first checkpoint", proc, timeout=300)
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
    assert "study.optimize(n_jobs=2)" in jobs.stderr and "`segtrain run --jobs 2`" in one_line(jobs.stderr)


def test_jobs_2_drive_the_search_in_two_processes_and_a_kill_9_then_the_same_command_ends_with_each_trial_once(
    tmp_path,
):
    run_dir, count = tmp_path / "run", 6
    command = with_jobs(args(run_dir, 2, "--trials", count), 2)
    proc = subprocess.Popen(segtrain_cmd(*command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(), start_new_session=True)  # fmt: skip
    trial_dirs = run_dir / "trials"

    def mid_trial() -> list[Path]:  # trials past their first checkpoint, not finished
        return [t for t in trial_dirs.glob("trial-*") if (t / "ckpt-000002").exists() and not list(t.glob("*-end"))]

    wait_for(lambda: any(int(t.name[-4:]) >= 2 for t in mid_trial()), "a later trial's first checkpoint", proc, 300)
    os.killpg(proc.pid, signal.SIGKILL)  # the command, both processes that drive the search, their workers
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL and "Best trial" not in out
    ledgers = {p.name: json.loads(p.read_text()) for p in (run_dir / "optimize-1").glob("lane-*.json")}
    assert sorted(ledgers) == ["lane-0.json", "lane-1.json"] and all(ledgers.values())  # both drove trials
    interrupted = {
        t.name: checkpoint.latest(RunPaths(t)).path.name  # type: ignore[union-attr]
        for t in trial_dirs.glob("trial-*")
        if not list(t.glob("*-end")) and checkpoint.latest(RunPaths(t)) is not None
    }
    assert interrupted, "no trial was killed past a checkpoint"

    again = run_cli(*command)
    assert_exit(again, 0)
    found = trials(run_dir)
    assert [state for state, *_ in found] == ["COMPLETE"] * count  # each trial once: none again, none lost
    assert len({str(params) for _, params, _, _ in found}) == count  # the second process drew params of its own
    assert sorted(p.name for p in trial_dirs.iterdir()) == [f"trial-{n:04d}" for n in range(count)]
    for name, newest in interrupted.items():  # went on from its checkpoint, as the same trial
        assert f'"resumed_from": "{newest}"' in (trial_dirs / name / "segments.jsonl").read_text(), name
    assert again.stdout.startswith(f"Number of finished trials: {count}\nBest trial:\n")  # once, after every trial
    assert again.stdout.count("Best trial") == 1

    before = {t.name: (t / "segments.jsonl").read_text() for t in trial_dirs.iterdir()}
    third = run_cli(*command)  # the same command once more: nothing trains again
    assert_exit(third, 0)
    assert {t.name: (t / "segments.jsonl").read_text() for t in trial_dirs.iterdir()} == before
    assert third.stdout == again.stdout


def test_two_searches_in_one_script_keep_their_trials_apart_and_jobs_needs_a_search(tmp_path):
    script = ROOT / "tests" / "scripts" / "plain" / "two_searches.py"
    run_dir = tmp_path / "run"
    command = ["run", script, "--segment", 1, "--seed", 0, "--run-dir", run_dir, "--no-progress"]
    first = run_cli(*command)
    assert_exit(first, 0)
    lines = first.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["wide", "narrow"] and lines[1].startswith("narrow: 2 trials")
    assert sorted(p.relative_to(run_dir).as_posix() for p in run_dir.glob("trials*/trial-*")) == [
        "trials-2/trial-0000", "trials-2/trial-0001", "trials/trial-0000", "trials/trial-0001",
    ]  # fmt: skip
    assert all(len((t / "segments.jsonl").read_text().splitlines()) == 2 for t in run_dir.glob("trials*/trial-*"))
    again = run_cli(*command)
    assert_exit(again, 0)
    assert again.stdout == first.stdout

    plain = run_cli("run", ROOT / "tests" / "scripts" / "plain" / "train.py", "--jobs", 2, "--run-dir",
                    tmp_path / "plain", "--no-progress")  # fmt: skip
    assert_exit(plain, 2)
    assert "calls model.fit(...) outside a search" in one_line(plain.stderr)

"""Which trial a sweep process trains next: an orphaned one to go on with, a new one, or none.

Every decision is taken under one lock on the sweep directory (`claims.lock`,
flock), so processes that share the directory never take the same trial, and
never ask for more trials than the sweep wants:

1. A RUNNING trial of this sweep directory whose run lock no live process
   holds is an orphan (its process was killed): it is taken over and, as the
   same trial, goes on from its newest checkpoint.
2. Otherwise, while finished (complete or pruned) and running trials number
   fewer than the sweep wants, a new trial is asked for, and its run lock is
   taken before the claims lock is let go.
3. Otherwise there is nothing to take: the sweep is done, or waits for the
   trials other processes are training.

A trial's owner holds its run lock for as long as it trains it, and tells the
study the trial's result before it lets the lock go.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segtrain.errors import RunLockedError
from segtrain.paths import RunPaths, SweepPaths
from segtrain.runs.paths import RunLock
from segtrain.search.study import SweepStudy
from segtrain.state.atomic import exclusive

SWEEP_ATTR = "segtrain:sweep"  # the token of the sweep directory that trains the trial
RUN_DIR_ATTR = "segtrain:run_dir"
ERROR_ATTR = "segtrain:error"  # why a trial failed
PRUNED_ATTR = "segtrain:pruned"  # why a trial was pruned
BEST_EPOCH_ATTR = "segtrain:best_epoch"
PARAMS_ATTR = "segtrain:params"  # the params the trial's run got (search_space may add ones it did not suggest)
ERROR_ATTR_NAMES = (ERROR_ATTR, PRUNED_ATTR)


def trial_dir(sweep_dir: Path, number: int) -> Path:
    return SweepPaths(Path(sweep_dir)).trial(number)


@dataclass
class Claim:
    """A trial this process now owns: it holds the trial's run lock."""

    trial: Any  # optuna.trial.Trial
    run_dir: Path
    lock: RunLock
    orphan: bool  # taken over from a process that died


@dataclass(frozen=True)
class Next:
    claim: Claim | None
    done: bool  # the study has all the finished trials the sweep wants


@contextmanager
def sweep_lock(sweep_dir: Path) -> Iterator[None]:
    """The sweep directory's lock (flock on DIR/claims.lock): one process at a time opens, claims, asks."""
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    with exclusive(SweepPaths(Path(sweep_dir)).claims_lock):
        yield


def counts(study: Any) -> tuple[int, int, int]:
    """(finished, running, failed) trials of the study: finished counts complete and pruned ones."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    running = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    failed = sum(t.state == TrialState.FAIL for t in trials)
    return finished, running, failed


def next_trial(sweep: SweepStudy, sweep_dir: Path, token: str, wanted: int) -> Next:
    """Claim the next trial to train (see the module's docstring)."""
    from optuna.trial import TrialState

    study = sweep.study
    with sweep_lock(sweep_dir):
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen.user_attrs.get(SWEEP_ATTR) != token:
                continue  # trained from another sweep directory (another machine's): not ours to go on with
            run_dir = trial_dir(sweep_dir, frozen.number)
            lock = _try_lock(run_dir)
            if lock is None:
                continue  # its owner is alive
            if sweep.frozen(frozen.number).state != TrialState.RUNNING:
                lock.release()  # its owner told the study and let go, just now
                continue
            return Next(Claim(sweep.trial(frozen.number), run_dir, lock, orphan=True), False)
        finished, running, _ = counts(study)
        if finished >= wanted:
            return Next(None, True)
        if finished + running >= wanted:
            return Next(None, False)
        trial = study.ask()
        run_dir = trial_dir(sweep_dir, trial.number)
        lock = _try_lock(run_dir)
        if lock is None:  # a directory left from a study of the same name that was deleted: not ours
            raise RunLockedError(f"{run_dir} is in use by another process, yet the study just created its trial.")
        trial.set_user_attr(SWEEP_ATTR, token)
        trial.set_user_attr(RUN_DIR_ATTR, str(run_dir.resolve()))
        return Next(Claim(trial, run_dir, lock, orphan=False), False)


def _try_lock(run_dir: Path) -> RunLock | None:
    try:
        return RunLock(RunPaths(run_dir)).acquire()
    except RunLockedError:
        return None

"""`segtrain sweep`: trials of an Optuna study, one after another, each an isolated, resumable segtrain run.

The loop claims a trial (an orphaned one first, see `claims`), trains it
through the same segment loop as `segtrain fit` (fresh workers, exact
continuation), tells the study how it ended, and goes on until the study has
the finished trials the sweep wants. The workers come from one pool, so the
next trial's worker is started while the current trial trains.

`--jobs J` starts J such loops as processes of their own (`python -m
segtrain.search.job`), sharing the study as any processes do; where GPUs are
visible and `CUDA_VISIBLE_DEVICES` is not set, each gets one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segtrain.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_RESUMABLE,
    ScriptError,
    SegtrainError,
)
from segtrain.outcomes import RunStatus
from segtrain.paths import SweepPaths
from segtrain.runs import jobs
from segtrain.runs.directory import open_run
from segtrain.runs.loop import RunHooks
from segtrain.search import claims
from segtrain.search.claims import PARAMS_ATTR, trial_dir
from segtrain.search.config import SweepConfig, open_sweep, read_sweep_manifest
from segtrain.search.study import Pruner, SweepStudy, make_pruner, make_sampler, open_study
from segtrain.search.trial import Pruning, TrialResult, run_trial, trial_params
from segtrain.training.signals import SignalPolicy, StopFlag
from segtrain.worker.handle import WorkerSpec
from segtrain.worker.pool import WorkerPool
from segtrain.worker.protocol import Asked, Described, Failed, Question

log = logging.getLogger(__name__)

STORAGE_ENV = "SEGTRAIN_SWEEP_STORAGE"
WAIT_SECONDS = 2.0  # how often a process with nothing to claim looks again while others train the last trials


@dataclass
class SweepOutcome:
    """How a sweep ended: the study, its best trial's run directory, and the exit code the CLI returns."""

    status: RunStatus  # FINISHED, INTERRUPTED or FAILED
    exit_code: int
    message: str
    sweep_dir: Path
    study: Any  # optuna.Study
    trials: list[TrialResult]  # the trials this process trained
    best_run_dir: Path | None


@dataclass(frozen=True)
class Stopped:
    """Why a sweep's loop stopped before the study had its trials: the status it ends with, and the words."""

    status: RunStatus  # INTERRUPTED (a signal, or a trial stopped resumably: exit 75) or FAILED
    message: str


def sweep(cfg: SweepConfig, progress: bool = True, job: int | None = None) -> SweepOutcome:
    """Run the sweep `cfg` describes (or go on with it) until the study has `cfg.trials` finished trials."""
    with claims.sweep_lock(cfg.directory):  # processes starting together write one manifest, create one study
        manifest = open_sweep(cfg) if job is None else None
        study = open_study(
            url=cfg.storage_url,
            name=cfg.study_name,
            direction=cfg.direction or "minimize",
            sampler=None,
            pruner=make_pruner(cfg.pruner, cfg.run.epochs),
        )
    if job is None and cfg.jobs > 1:
        return _outcome(cfg, study.study, [], _run_jobs(cfg))
    pool = WorkerPool(WorkerSpec.of(cfg.run, SweepPaths(cfg.directory).compilation_cache))
    try:
        grid = _describe(cfg, pool)
        study.study.sampler = make_sampler(cfg.sampler, _sampler_seed(cfg.run.seed, study, job), grid)
        token = (manifest or read_sweep_manifest(cfg.directory)).token
        return _outcome(cfg, study.study, *_loop(cfg, study, pool, token, progress))
    finally:
        pool.close()


def _describe(cfg: SweepConfig, pool: WorkerPool) -> dict[str, Any] | None:
    """The script's `grid` (for the grid sampler), asked of a worker: this process imports no framework.
    A ScriptError (exit 2) where the script does not import or defines no search_space."""
    answer = pool.ask(Question(Asked.DESCRIBE))
    if isinstance(answer, Failed):
        error = ScriptError if answer.exit_code == EXIT_BAD_INPUT else SegtrainError
        raise error(answer.message)
    assert isinstance(answer, Described)
    if not answer.search_space:
        raise ScriptError(
            f"{cfg.run.script}: defines no function `search_space(trial)`. A sweep's script defines it, e.g.\n"
            "    def search_space(trial):\n"
            "        return {'units': trial.suggest_int('units', 32, 256, log=True),\n"
            "                'lr': trial.suggest_float('lr', 1e-4, 1e-2, log=True)}\n"
            "and takes the params in build_model(params) (and load_data(params), callbacks(params))."
        )
    return answer.grid


def _sampler_seed(seed: int | None, study: SweepStudy, job: int | None) -> int | None:
    """The sampler's seed: the sweep's, moved on by the trials the study has and by the job's index.

    A sampler that starts again from the same seed proposes the same params
    again: a sweep that goes on after a stop, or a second job, would repeat
    trials. The seed stays a function of the study's history, so a sweep run
    in one go is reproducible.
    """
    if seed is None:
        return None
    return seed + len(study.study.get_trials(deepcopy=False)) + 100_003 * (job or 0)


def _loop(
    cfg: SweepConfig, study: SweepStudy, pool: WorkerPool, token: str, progress: bool
) -> tuple[list[TrialResult], Stopped | None]:
    """Claim and train trials until the study has enough; the trials and why the loop stopped early (or None)."""
    flag = StopFlag()
    done: list[TrialResult] = []
    ahead: list[claims.Claim] = []  # the next trial, claimed while the current one trained
    claiming = (study, cfg.directory, token, cfg.trials)

    def ask_ahead() -> Path | None:
        """Claim the next trial now, run its search_space, open its run: its worker builds and traces its model
        while the current trial trains its last segment. None where there is none to claim, or it fails here
        (its trial then asks again, and fails with the error)."""
        step = claims.next_trial(*claiming)
        if step.claim is None:
            return None
        ahead.append(step.claim)
        try:
            params = trial_params(step.claim, cfg.run.script, pool)
            step.claim.trial.set_user_attr(PARAMS_ATTR, params)
            open_run(cfg.trial_config(step.claim.run_dir, params))
        except (SegtrainError, OSError):
            return None
        return step.claim.run_dir

    def hooks(pruning: Pruning, claim: claims.Claim) -> RunHooks:
        finished, running, _ = claims.counts(study.study)  # the claimed trial runs: another may follow it?
        return RunHooks(
            on_epoch=pruning,
            verdicts=cfg.pruner != Pruner.NONE,
            pool=pool,
            more_runs=finished + running < cfg.trials,
            next_run=ask_ahead,
            lock=claim.lock,
        )

    with SignalPolicy(cfg.run.signals, flag), _releasing(ahead):
        while not flag.requested:
            step = claims.Next(ahead.pop(), False) if ahead else claims.next_trial(*claiming)
            if step.done:
                return done, None
            if step.claim is None:
                time.sleep(WAIT_SECONDS)  # the last trials are others' to finish (or to fail: then ask again)
                continue
            result = run_trial(step.claim, cfg, study, pool, hooks, progress)
            done.append(result)
            _say(result, study.study, cfg.trials)
            if result.exit_code in (EXIT_RESUMABLE, EXIT_BAD_INPUT):
                resumable = result.exit_code == EXIT_RESUMABLE
                return done, Stopped(RunStatus.INTERRUPTED if resumable else RunStatus.FAILED, result.message)
            _, _, failed = claims.counts(study.study)
            if failed >= cfg.trials:
                return done, Stopped(
                    RunStatus.FAILED,
                    f"{failed} trials failed, as many as the sweep wants to finish; the newest: "
                    f"{result.message}. Fix the script (see each trial's run directory), then run "
                    "the same command again.",
                )
        return done, Stopped(RunStatus.INTERRUPTED, f"stopped by {flag.signal}")


@contextmanager
def _releasing(ahead: list[claims.Claim]) -> Iterator[None]:
    """Let go of a trial claimed ahead that the loop did not train (it stopped): the study keeps it running, and
    the next sweep process takes it over, as an orphan, from the start."""
    try:
        yield
    finally:
        for claim in ahead:
            claim.lock.release()


def _say(result: TrialResult, study: Any, wanted: int) -> None:
    from optuna.trial import TrialState

    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    best = ""
    if result.state == TrialState.COMPLETE:
        try:
            best = " (best so far)" if study.best_trial.number == result.number else ""
        except ValueError:
            pass
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.params.items())
    log.info(
        "trial %d %s%s: %s [%s] (%d/%d finished)",
        result.number,
        result.state.name.lower(),
        best,
        result.message,
        params,
        finished,
        wanted,
    )


def _outcome(cfg: SweepConfig, study: Any, trials: list[TrialResult], stopped: Stopped | None) -> SweepOutcome:
    from optuna.trial import TrialState

    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    best_dir = None
    try:
        best_dir = trial_dir(cfg.directory, study.best_trial.number)
    except ValueError:
        pass  # no complete trial yet
    if stopped is None:
        return SweepOutcome(
            RunStatus.FINISHED, EXIT_OK, f"{finished} trials finished", cfg.directory, study, trials, best_dir
        )
    interrupted = stopped.status == RunStatus.INTERRUPTED or any(t.exit_code == EXIT_RESUMABLE for t in trials)
    if interrupted:
        return SweepOutcome(
            RunStatus.INTERRUPTED,
            EXIT_RESUMABLE,
            f"{stopped.message}; {finished}/{cfg.trials} trials finished; run the same command to go on "
            "(an interrupted trial goes on from its checkpoint)",
            cfg.directory,
            study,
            trials,
            best_dir,
        )
    code = EXIT_BAD_INPUT if any(t.exit_code == EXIT_BAD_INPUT for t in trials) else EXIT_FAILED
    return SweepOutcome(RunStatus.FAILED, code, stopped.message, cfg.directory, study, trials, best_dir)


# -- several jobs ---------------------------------------------------------------------------------------


def _run_jobs(cfg: SweepConfig) -> Stopped | None:
    """Start `cfg.jobs` job processes on the sweep directory, forward stop signals, wait; why one stopped early."""
    env = {STORAGE_ENV: cfg.storage or ""}  # the manifest keeps no password
    codes = jobs.run_all("segtrain.search.job", [str(cfg.directory)], cfg.jobs, cfg.run.signals, env)
    end = jobs.ended(codes, "a job of the sweep")
    return None if end is None else Stopped(*end)

"""`segtrain run`: an ordinary training script in segments, its epochs learned from its own `model.fit` calls.

Each `fit` call of the script is a stage of the run, in a run directory of its
own (`RunPaths.stage`: the first is the run's). A stage's epochs are its call's
`epochs`, learned from a worker that runs the script up to that call and waits
there: it then trains the stage's first segment. More epochs than an existing
stage has extend it. Everything else is the segment loop of `segtrain fit`
(`runs.loop`), stage after stage, with workers that run the script from the
top (`training.launched`); a worker at a stage already trained gets it back at
once and goes on to the next. The run ends when the script does.

A script whose first worker stops in `study.optimize` instead is a search
(`segtrain.worker.optimize`): that worker drives Optuna's loop, and each trial
it asks for is a run of its own in `RUN/trials/trial-NNNN`, its stages
trained as above by workers that run the objective, their trial's calls
relayed to the driver. With `--jobs J`, J processes (`segtrain.runs.lane`)
each drive a share of the search's trials, in one study; the command's own
process holds the run's lock and waits for them (`runs.jobs`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from pathlib import Path

from segtrain.config import EPOCHS_FROM_SCRIPT, RunConfig
from segtrain.errors import EXIT_FAILED, EXIT_OK, EXIT_RESUMABLE, ConfigError, ScriptError, SegtrainError
from segtrain.outcomes import RunOutcome, RunStatus
from segtrain.paths import RunPaths
from segtrain.runs import jobs, loop
from segtrain.runs.directory import settings_differ
from segtrain.runs.paths import RunLock
from segtrain.runs.runners import failure
from segtrain.worker.handle import TrialLink, WorkerProcess, WorkerSpec
from segtrain.worker.pool import WorkerPool
from segtrain.worker.protocol import (
    AtOptimize,
    Drive,
    Failed,
    Ready,
    RunTrial,
    TrialAnswer,
    TrialCall,
    TrialRequest,
    encode,
)

LANE_ENV = "SEGTRAIN_LANE"  # what each process of `run --jobs` runs, as JSON (`segtrain.runs.lane` reads it)


def run(cfg: RunConfig, progress: bool = True) -> RunOutcome:
    """Run (or resume) the launched script of `cfg` (`cfg.launched`) until its run ends or is stopped.

    Returns the outcome of the stage the run ended in: its last (the script
    ended), or the one that failed or was interrupted; for a search, the
    search's. With `cfg.jobs` > 1, the search's trials run that many at once,
    each of `cfg.jobs` processes driving its share (`run_lane`).
    """
    if cfg.part_of is not None:
        raise ConfigError(
            f"{cfg.directory} is part of the run in {cfg.part_of} (a stage of its script, or a trial of its "
            f"search): go on with that run, with the same `segtrain run` command."
        )
    paths = RunPaths(cfg.directory)
    with RunLock(paths) as lock:
        if cfg.force and paths.stages.exists() and settings_differ(cfg):
            shutil.rmtree(paths.stages)  # its later stages start over with the run (`open_run` wipes that)
        if cfg.force and not paths.manifest.exists():  # a search (no run of its own here): it starts over
            for kept in paths.search_records():
                shutil.rmtree(kept) if kept.is_dir() else kept.unlink()
        invocation = uuid.uuid4().hex  # the trials this command begins, told from those of an earlier one
        if cfg.jobs > 1:
            return _lanes(dataclasses.replace(cfg, force=False), progress, invocation)
        return _run(cfg, progress, lock, Drive(invocation=invocation))


def run_lane(cfg: RunConfig, progress: bool, drive: Drive) -> RunOutcome:
    """One of the `cfg.jobs` processes of `segtrain run --jobs` (`segtrain.runs.lane`), `drive.lane` of them:
    the command's own process holds the run's lock, each trial's run has its own."""
    return _run(cfg, progress, None, drive)


def _run(cfg: RunConfig, progress: bool, lock: RunLock | None, drive: Drive) -> RunOutcome:
    paths = RunPaths(cfg.directory)
    pool = WorkerPool(WorkerSpec.of(cfg, paths.compilation_cache), shown=drive.lane == 0)
    try:
        worker = _first(cfg, pool, cfg.directory)
        if worker.at_optimize is not None:
            return _Search(cfg, pool, lock, progress, worker, drive).run()
        if drive.lanes > 1:
            worker.close()
            raise ConfigError(
                f"`segtrain run --jobs {drive.lanes}` runs a search script's trials (study.optimize, tuner.search) "
                f"at once; {cfg.script} calls model.fit(...) outside a search. Leave --jobs out."
            )
        assert worker.ready is not None and lock is not None
        pool.keep(worker)
        return _stages(cfg, _stage(cfg, worker.ready), pool, loop.RunHooks(pool=pool, lock=lock), progress)
    finally:
        pool.close()


def _lanes(cfg: RunConfig, progress: bool, invocation: str) -> RunOutcome:
    """`cfg.jobs` processes (`segtrain.runs.lane`), each driving its share of the script's search; how they ended.

    The first shows what the script prints (and the progress), the others their trials' lines; the first goes
    on with the script after the search, once every process has told its trials.
    """
    lane = {"config": cfg.to_json(saved=False), "progress": progress, "invocation": invocation}
    codes = jobs.run_all("segtrain.runs.lane", [], cfg.jobs, cfg.signals, {LANE_ENV: json.dumps(lane)}, True)
    trials = RunPaths(cfg.directory).trials
    end = jobs.ended(codes, "a process of the search")
    if end is None:
        said = f"the script's search ran in {cfg.jobs} processes"
        return RunOutcome(RunStatus.FINISHED, EXIT_OK, 0, 0, said, trials, launched=True, searched=True)
    status, message = end
    code = EXIT_RESUMABLE if status == RunStatus.INTERRUPTED else EXIT_FAILED
    said = f"the search's {cfg.jobs} processes: {message}"
    return RunOutcome(status, code, 0, 0, said, trials, launched=True, searched=True)


def _first(cfg: RunConfig, pool: WorkerPool, run_dir: Path) -> WorkerProcess:
    """A worker that has run the script up to its first `fit` call not trained already, or to `study.optimize`."""
    worker, _, _ = pool.take(run_dir)
    if not worker.wait_ready() or (worker.ready is None and worker.at_optimize is None):
        error = failure(worker, worker.early_error, cfg, "that runs the script")
        worker.close()
        raise error
    return worker


def _stages(cfg: RunConfig, stage: RunConfig, pool: WorkerPool, hooks: loop.RunHooks, progress: bool) -> RunOutcome:
    """The segment loop of each stage in turn, from `stage` on, while the script calls `fit` again."""
    while True:
        outcome = loop.fit(stage, progress=progress, hooks=hooks)
        waiting = pool.next_stage()
        if outcome.status not in (RunStatus.FINISHED, RunStatus.STOPPED) or waiting is None:
            return outcome
        stage = _stage(cfg, waiting)


def _stage(cfg: RunConfig, ready: Ready) -> RunConfig:
    """The run configuration of the stage a worker waits in, with the epochs its `fit` call asks for.

    `cfg`: the run's (or a trial's run's); its first stage is its own directory.
    """
    if ready.fit_epochs is None:  # only a pre-started worker may wait before the script runs; this one is not
        raise SegtrainError(f"The worker that runs {cfg.script} did not say how many epochs its fit() asks for.")
    if ready.stage == 1 and cfg.epochs != EPOCHS_FROM_SCRIPT:
        return cfg  # `resume`: the run's own epochs (the worker refuses a script that asks for others)
    stage = RunPaths(cfg.directory).stage(ready.stage)
    part_of = cfg.part_of if ready.stage == 1 else cfg.part_of or str(cfg.directory)
    return dataclasses.replace(cfg, run_dir=stage, epochs=ready.fit_epochs, part_of=part_of)


class _Search:
    """A launched script's search (`study.optimize`, `tuner.search`): its driver's requests, each trial a run
    trained stage after stage."""

    def __init__(
        self,
        cfg: RunConfig,
        pool: WorkerPool,
        lock: RunLock | None,
        progress: bool,
        driver: WorkerProcess,
        drive: Drive,
    ):
        self.cfg, self.pool, self.lock, self.progress, self.driver = cfg, pool, lock, progress, driver
        self.drive = drive
        self.paths = RunPaths(cfg.directory)
        self.trials = 0

    def run(self) -> RunOutcome:
        driver = self.driver
        if self.drive.lane > 0:
            driver.output.fresh_from_mark()  # the script's top is the first lane's to show; its trials are its own
        driver.tell(self.drive.encode())
        driver.took_over = True  # its log is kept
        try:
            while (message := driver.next_message()) is not None:
                if isinstance(message, AtOptimize):  # a later search call of the script: driven here, alone
                    driver.tell(Drive(invocation=self.drive.invocation).encode())
                if isinstance(message, Failed):  # the script's error while it drove (said again as it ends)
                    driver.early_error = message
                if isinstance(message, TrialRequest) and (ended := self._trial(message)) is not None:
                    return ended  # interrupted (resumable) or failed: the driver is told nothing more
                if isinstance(message, Ready):
                    raise ScriptError(
                        f"{self.cfg.script}: calls model.fit(...) outside its search's trials (study.optimize's "
                        "objective, tuner.search). Under `segtrain run` a search script trains in its trials only; "
                        "train the best model after the search in a script of its own."
                    )
            code = driver.wait()
            if code != 0:
                raise failure(driver, driver.early_error, self.cfg, "that drives the script's search")
        finally:
            driver.close()
        ran = f"the script's search ran {self.trials} trial{'s' if self.trials != 1 else ''} here"
        return RunOutcome(RunStatus.FINISHED, EXIT_OK, 0, 0, ran, self.paths.trials, launched=True, searched=True)

    def _relay(self, call: TrialCall) -> TrialAnswer:
        """A trial's worker called its trial: the driver makes the call on the study's trial and answers."""
        self.driver.tell(encode(call))
        answer = self.driver.next_message()
        if not isinstance(answer, TrialAnswer):
            return TrialAnswer(error="the worker that drives the search ended")
        return answer

    def _trial(self, request: TrialRequest) -> RunOutcome | None:
        """Run the trial the driver asks for (a run directory of its own, resumed where it has checkpoints) and tell
        it what its objective returned; or the outcome the search ends with, where the trial's run did not end."""
        number = request.number
        run_dir = self.paths.trial(number, request.call)
        link = TrialLink(RunTrial(number, str(run_dir), request.call), self._relay)
        cfg = dataclasses.replace(
            self.cfg, run_dir=run_dir, epochs=EPOCHS_FROM_SCRIPT, force=False, part_of=str(self.cfg.directory)
        )
        worker = _first(cfg, self.pool, run_dir)
        if worker.at_optimize is None or not worker.begin_trial(link, show=True):
            error = failure(worker, worker.early_error, cfg, f"of trial {number}")
            worker.close()
            raise error
        if worker.returned is not None:  # its objective returned (or raised) before any fit()
            link.returned = worker.returned
            worker.close()
        else:
            assert worker.ready is not None
            self.pool.keep(worker)
            hooks = loop.RunHooks(pool=self.pool, lock=self.lock, more_runs=True, trial=link)
            outcome = _stages(cfg, _stage(cfg, worker.ready), self.pool, hooks, self.progress)
            if outcome.status not in (RunStatus.FINISHED, RunStatus.STOPPED):
                return outcome
        if link.returned is None:
            raise SegtrainError(f"Trial {number}'s objective did not return (its run: {run_dir}).")
        self.trials += 1
        self.driver.tell(encode(link.returned))
        return None

"""`segtrain run`: an ordinary training script in segments, its epochs learned from its own `model.fit` calls.

Each `fit` call of the script is a stage of the run, in a run directory of its
own (`RunPaths.stage`: the first is the run's). A stage's epochs are its call's
`epochs`, learned from a worker that runs the script up to that call and waits
there: it then trains the stage's first segment. More epochs than an existing
stage has extend it. Everything else is the segment loop of `segtrain fit`
(`runs.loop`), stage after stage, with workers that run the script from the
top (`training.launched`); a worker at a stage already trained gets it back at
once and goes on to the next. The run ends when the script does.
"""

from __future__ import annotations

import dataclasses
import shutil

from segtrain.config import EPOCHS_FROM_SCRIPT, RunConfig
from segtrain.errors import SegtrainError
from segtrain.outcomes import RunOutcome, RunStatus
from segtrain.paths import RunPaths
from segtrain.runs import loop
from segtrain.runs.directory import settings_differ
from segtrain.runs.paths import RunLock
from segtrain.runs.runners import failure
from segtrain.worker.handle import WorkerSpec
from segtrain.worker.pool import WorkerPool


def run(cfg: RunConfig, progress: bool = True) -> RunOutcome:
    """Run (or resume) the launched script of `cfg` (`cfg.launched`) until its run ends or is stopped.

    Returns the outcome of the stage the run ended in: its last (the script
    ended), or the one that failed or was interrupted.
    """
    paths = RunPaths(cfg.directory)
    with RunLock(paths) as lock:
        if cfg.force and paths.stages.exists() and settings_differ(cfg):
            shutil.rmtree(paths.stages)  # its later stages start over with its first (`open_run` wipes that)
        pool = WorkerPool(WorkerSpec.of(cfg, paths.compilation_cache))
        try:
            stage = _first_stage(cfg, pool)
            while True:
                outcome = loop.fit(stage, progress=progress, hooks=loop.RunHooks(pool=pool, lock=lock))
                waiting = pool.next_stage()
                if outcome.status not in (RunStatus.FINISHED, RunStatus.STOPPED) or waiting is None:
                    return outcome
                stage = _stage(cfg, waiting.stage, waiting.fit_epochs)
        finally:
            pool.close()


def _stage(cfg: RunConfig, number: int, epochs: int | None) -> RunConfig:
    """The run configuration of stage `number` (the first: `cfg`'s own directory) with the epochs its call asks."""
    if epochs is None:  # only a pre-started worker may wait before the script runs; this one is not
        raise SegtrainError(f"The worker that runs {cfg.script} did not say how many epochs its fit() asks for.")
    if number == 1 and cfg.epochs != EPOCHS_FROM_SCRIPT:
        return cfg  # `resume`: the run's own epochs (the worker refuses a script that asks for others)
    return dataclasses.replace(cfg, run_dir=RunPaths(cfg.directory).stage(number), epochs=epochs)


def _first_stage(cfg: RunConfig, pool: WorkerPool) -> RunConfig:
    """The stage the run goes on with, as its first worker finds it: the first `fit` call not trained already.

    That worker stays in `pool`, waiting in that call, to train the stage's next
    segment. An existing stage with other epochs is extended (or refused, below
    what it has trained) by `open_run`, as `segtrain fit` with other `--epochs` is.
    """
    worker, _, _ = pool.take(cfg.directory)
    if not worker.wait_ready() or worker.ready is None:
        error = failure(worker, worker.early_error, cfg, "that runs the script")
        worker.close()
        raise error
    ready = worker.ready
    pool.keep(worker)
    return _stage(cfg, ready.stage, ready.fit_epochs)

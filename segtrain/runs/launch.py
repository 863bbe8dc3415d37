"""`segtrain run`: an ordinary training script in segments, its epochs learned from its own `model.fit` call.

The run's epochs are the script's `model.fit(epochs=...)`, learned from its
first worker, which runs the script up to `fit` and waits there: it then
trains the first segment. More epochs than an existing run has extend it. Everything else
is the segment loop of `segtrain fit` (`runs.loop`), with workers that run the
script from the top (`training.launched`).
"""

from __future__ import annotations

import dataclasses

from segtrain.config import EPOCHS_FROM_SCRIPT, RunConfig
from segtrain.errors import SegtrainError
from segtrain.outcomes import RunOutcome
from segtrain.paths import RunPaths
from segtrain.runs import loop
from segtrain.runs.paths import RunLock
from segtrain.runs.runners import failure
from segtrain.worker.handle import WorkerSpec
from segtrain.worker.pool import WorkerPool


def run(cfg: RunConfig, progress: bool = True) -> RunOutcome:
    """Run (or resume) the launched script of `cfg` (`cfg.launched`) until its run ends or is stopped."""
    paths = RunPaths(cfg.directory)
    with RunLock(paths) as lock:
        pool = WorkerPool(WorkerSpec.of(cfg, paths.compilation_cache))
        try:
            if cfg.epochs == EPOCHS_FROM_SCRIPT:
                cfg = _with_epochs(cfg, pool)
            return loop.fit(cfg, progress=progress, hooks=loop.RunHooks(pool=pool, lock=lock))
        finally:
            pool.close()


def _with_epochs(cfg: RunConfig, pool: WorkerPool) -> RunConfig:
    """`cfg` with the epochs that its first worker's `fit` call asks for.

    That worker stays in `pool`, waiting in `fit`, to train the first segment.
    An existing run with other epochs is extended (or refused, below what it
    has trained) by `open_run`, as `segtrain fit` with other `--epochs` is.
    """
    worker, _, _ = pool.take(cfg.directory)
    if not worker.wait_ready() or worker.ready is None:
        error = failure(worker, worker.early_error, cfg, "that runs the script")
        worker.close()
        raise error
    epochs = worker.ready.fit_epochs
    if epochs is None:  # only a pre-started worker may wait before the script runs; this one is not
        worker.close()
        raise SegtrainError(f"The worker that runs {cfg.script} did not say how many epochs its fit() asks for.")
    pool.keep(worker)
    return dataclasses.replace(cfg, epochs=epochs)

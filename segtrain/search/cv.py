"""`segtrain cv`: K-fold cross-validation, each fold its own run directory and its own processes.

For in-memory arrays without validation data segtrain makes the folds itself,
seeded and shuffled (`segtrain.training.data.Fold`); a script that splits its
data itself reads `params["fold"]` and `params["folds"]` in `load_data(params)`.
Folds run one after another through the same segment loop as `segtrain fit`,
the next fold's worker started while the current one trains its last segment,
and set up for that fold (its data loaded, its model built and traced); running
the same command again goes on with the first fold that has not finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from segtrain.errors import EXIT_FAILED, EXIT_OK, EXIT_RESUMABLE, SegtrainError
from segtrain.outcomes import RunOutcome, RunStatus
from segtrain.paths import CvPaths, RunPaths
from segtrain.runs import loop
from segtrain.runs.directory import open_run
from segtrain.runs.paths import RunLock
from segtrain.search.cv_config import CvConfig, open_cv
from segtrain.search.cv_report import CvReport, build
from segtrain.worker.handle import WorkerSpec
from segtrain.worker.pool import WorkerPool


@dataclass
class CvOutcome:
    status: RunStatus
    exit_code: int
    message: str
    cv_dir: Path
    report: CvReport


def _open_fold(cfg: CvConfig, index: int, split_seed: int) -> Path | None:
    """Fold `index`'s run, opened while the fold before it trains its last segment (`RunHooks.next_run`): its
    worker loads its data and builds and traces its model meanwhile. None where it cannot be opened now."""
    fold = cfg.fold_config(index, split_seed)
    try:
        with RunLock(RunPaths(fold.directory)):
            open_run(fold)
    except (SegtrainError, OSError):
        return None  # its own turn opens it again, and says why
    return fold.directory


def cv(cfg: CvConfig, progress: bool = True) -> CvOutcome:
    """Train every fold that has not finished; the per-fold metrics and their mean and spread."""
    manifest = open_cv(cfg)
    pool = WorkerPool(WorkerSpec.of(cfg.run, CvPaths(cfg.directory).compilation_cache))
    outcomes: list[RunOutcome] = []
    try:
        for index in range(cfg.folds):
            more = index < cfg.folds - 1
            ahead = partial(_open_fold, cfg, index + 1, manifest.split_seed) if more else None
            hooks = loop.RunHooks(pool=pool, more_runs=more, next_run=ahead)
            outcome = loop.fit(cfg.fold_config(index, manifest.split_seed), progress, hooks)
            outcomes.append(outcome)
            if outcome.status == RunStatus.INTERRUPTED:
                break
    finally:
        pool.close()
    report = build(cfg.directory)
    last = outcomes[-1]
    if last.status == RunStatus.INTERRUPTED:
        return CvOutcome(
            RunStatus.INTERRUPTED,
            EXIT_RESUMABLE,
            f"fold {len(outcomes) - 1}: {last.message}; run the same command to go on",
            cfg.directory,
            report,
        )
    failed = [i for i, o in enumerate(outcomes) if o.status == RunStatus.FAILED]
    if failed:
        return CvOutcome(
            RunStatus.FAILED,
            EXIT_FAILED,
            f"fold{'s' if len(failed) > 1 else ''} {', '.join(map(str, failed))} failed: {outcomes[failed[0]].message}",
            cfg.directory,
            report,
        )
    summary = ", ".join(f"{k} {report.mean[k]:.4g} ± {report.std[k]:.2g}" for k in sorted(report.mean))
    return CvOutcome(RunStatus.FINISHED, EXIT_OK, f"{cfg.folds} folds: {summary}", cfg.directory, report)

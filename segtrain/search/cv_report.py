"""A cross-validation's report: each fold's final metrics and their mean and spread, and its table."""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segtrain.outcomes import RunStatus
from segtrain.paths import CvPaths, RunPaths
from segtrain.state import atomic, search_manifests
from segtrain.state.manifest import read_manifest


@dataclass
class FoldResult:
    fold: int
    status: str  # the fold's run status: finished, stopped, interrupted, failed, new
    run_dir: str
    epochs_done: int
    metrics: dict[str, float] = field(default_factory=dict)  # the final epoch's logs


@dataclass
class CvReport:
    cv_dir: str
    folds: list[FoldResult]
    mean: dict[str, float]
    std: dict[str, float]  # sample standard deviation over the finished folds

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build(cv_dir: Path | str) -> CvReport:
    """Each fold's final metrics, from its run directory, and their mean ± std over the finished folds."""
    root = Path(cv_dir)
    manifest = search_manifests.read_cv_manifest(CvPaths(root).manifest)
    folds = []
    for index in range(manifest.folds):
        run_dir = CvPaths(root).fold(index)
        paths = RunPaths(run_dir)
        run = read_manifest(paths) if run_dir.is_dir() else None
        history = atomic.read_json(paths.history_json) if paths.history_json.exists() else {}
        metrics = {k: float(v[-1]) for k, v in history.items() if v}
        epochs = max((len(v) for v in history.values()), default=0)
        status = RunStatus.NEW if run is None else run.status
        folds.append(FoldResult(index, str(status), str(run_dir), epochs, metrics))
    done = [f for f in folds if f.status in (RunStatus.FINISHED, RunStatus.STOPPED)]
    keys = sorted(set.intersection(*(set(f.metrics) for f in done))) if done else []
    mean = {k: statistics.fmean(f.metrics[k] for f in done) for k in keys}
    std = {k: statistics.stdev(f.metrics[k] for f in done) if len(done) > 1 else 0.0 for k in keys}
    return CvReport(str(root), folds, _finite(mean), _finite(std))


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if math.isfinite(v)}


def render(report: CvReport, console: Any) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    keys = sorted(report.mean) or sorted({k for f in report.folds for k in f.metrics})
    table = Table(
        title=f"segtrain cv {escape(report.cv_dir)}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
    )
    for header in ("fold", "status", "epochs", *keys):
        table.add_column(header, justify="left" if header == "status" else "right")
    for f in report.folds:
        table.add_row(
            str(f.fold),
            f.status,
            str(f.epochs_done),
            *("–" if k not in f.metrics else f"{f.metrics[k]:.4g}" for k in keys),
        )
    if report.mean:
        table.add_row("mean ± std", "", "", *(f"{report.mean[k]:.4g} ± {report.std[k]:.2g}" for k in keys))
    console.print(table)

"""`segtrain cv`: K-fold cross-validation, each fold its own run directory and its own processes.

For in-memory arrays without validation data segtrain makes the folds itself,
seeded and shuffled (`segtrain.training.data.Fold`); a script that splits its
data itself reads `params["fold"]` and `params["folds"]` in `load_data(params)`.
Folds run one after another through the same segment loop as `segtrain fit`,
the next fold's worker started while the current one trains; running the same
command again goes on with the first fold that has not finished.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segtrain.config import DEFAULT_ROOT, RunConfig
from segtrain.errors import EXIT_FAILED, EXIT_OK, EXIT_RESUMABLE, ConfigError
from segtrain.outcomes import RunOutcome, RunStatus
from segtrain.runs.directory import script_digest
from segtrain.runs.paths import read_manifest_file
from segtrain.state import atomic
from segtrain.telemetry import scalars
from segtrain.version import __version__

MANIFEST = "cv.json"
IDENTITY_FIELDS = ("epochs", "seed", "format", "save_every", "params", "folds")


@dataclass
class CvConfig:
    """K-fold cross-validation: `run` is every fold's `RunConfig` (its run_dir and fold are the fold's own)."""

    run: RunConfig
    folds: int
    cv_dir: Path | None = None
    force: bool = False

    def __post_init__(self) -> None:
        if self.cv_dir is None:
            self.cv_dir = DEFAULT_ROOT / f"{self.run.script.stem}-cv"
        self.cv_dir = Path(self.cv_dir)
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ConfigError(f"--folds must be an integer of at least 2. Received: folds={self.folds!r}")
        if reserved := sorted({"fold", "folds"} & set(self.run.params)):
            raise ConfigError(f"--param {', '.join(reserved)}: segtrain cv sets params['fold'] and params['folds'].")
        if self.cv_dir.exists() and not self.cv_dir.is_dir():
            raise ConfigError(f"--dir {self.cv_dir} is a file: give a directory (it is created if missing).")

    @property
    def directory(self) -> Path:
        assert self.cv_dir is not None
        return self.cv_dir

    def identity(self) -> dict[str, Any]:
        run = self.run
        values = {
            "epochs": run.epochs,
            "seed": run.seed,
            "format": run.format,
            "save_every": run.save_every,
            "params": run.params,
            "folds": self.folds,
        }
        return {k: values[k] for k in IDENTITY_FIELDS}

    def fold_dir(self, index: int) -> Path:
        return self.directory / "folds" / f"fold-{index}"

    def fold_config(self, index: int, split_seed: int) -> RunConfig:
        params = dict(self.run.params, fold=index, folds=self.folds)
        fold = {"index": index, "count": self.folds, "seed": split_seed}
        run_dir = self.fold_dir(index)
        tensorboard = scalars.for_run(self.run.tensorboard, run_dir)
        return dataclasses.replace(
            self.run, run_dir=run_dir, params=params, fold=fold, force=False, tensorboard=tensorboard
        )


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


@dataclass
class CvOutcome:
    status: RunStatus
    exit_code: int
    message: str
    cv_dir: Path
    report: CvReport


def open_cv(cfg: CvConfig) -> dict[str, Any]:
    """Create the cross-validation's manifest, or check `cfg` against it (`--force` starts over)."""
    import shutil

    root, digest = cfg.directory, script_digest(cfg.run.script)
    path = root / MANIFEST
    if path.exists():
        manifest = read_cv_manifest(root)
        differences = [
            f"{k}: {manifest['identity'].get(k)!r} then, {v!r} now"
            for k, v in cfg.identity().items()
            if manifest["identity"].get(k) != v
        ]
        if manifest["script"]["sha256"] != digest:
            differences.insert(0, f"the script {cfg.run.script} changed (SHA-256 differs)")
        if not differences:
            return manifest
        if not cfg.force:
            raise ConfigError(
                f"{root} holds a cross-validation with other settings: "
                + "; ".join(differences)
                + ". Use another --dir, or --force to start it over (its folds are deleted)."
            )
        shutil.rmtree(root / "folds", ignore_errors=True)
    seed = cfg.run.seed
    manifest = {
        "segtrain_version": __version__,
        "created": time.time(),
        "script": {"path": str(cfg.run.script.resolve()), "sha256": digest},
        "split_seed": seed if seed is not None else secrets.randbelow(2**31),  # one split for every fold
        "config": {"folds": cfg.folds, "run": cfg.run.to_json()},
        "identity": cfg.identity(),
    }
    root.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, manifest)
    return manifest


def read_cv_manifest(root: Path) -> dict[str, Any]:
    return read_manifest_file(Path(root) / MANIFEST, "cross-validation", "split_seed")


def is_cv_dir(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def cv(cfg: CvConfig, progress: bool = True) -> CvOutcome:
    """Train every fold that has not finished; the per-fold metrics and their mean and spread."""
    from segtrain.runs import loop
    from segtrain.worker.handle import WorkerSpec
    from segtrain.worker.pool import WorkerPool

    manifest = open_cv(cfg)
    pool = WorkerPool(WorkerSpec.of(cfg.run))
    outcomes: list[RunOutcome] = []
    try:
        for index in range(cfg.folds):
            hooks = loop.RunHooks(pool=pool, more_runs=index < cfg.folds - 1)
            outcome = loop.fit(cfg.fold_config(index, manifest["split_seed"]), progress, hooks)
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


def build(cv_dir: Path | str) -> CvReport:
    """Each fold's final metrics, from its run directory, and their mean ± std over the finished folds."""
    from segtrain.runs.paths import RunPaths, read_manifest

    root = Path(cv_dir)
    manifest = read_cv_manifest(root)
    folds = []
    for index in range(int(manifest["config"]["folds"])):
        run_dir = root / "folds" / f"fold-{index}"
        paths = RunPaths(run_dir)
        run = read_manifest(paths) if run_dir.is_dir() else None
        history = atomic.read_json(paths.history_json) if paths.history_json.exists() else {}
        metrics = {k: float(v[-1]) for k, v in history.items() if v}
        epochs = max((len(v) for v in history.values()), default=0)
        folds.append(FoldResult(index, str((run or {}).get("status", "new")), str(run_dir), epochs, metrics))
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

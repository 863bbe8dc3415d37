"""A sweep's options, checked once, and its manifest: `SWEEP_DIR/sweep.json`.

Like a run's manifest, sweep.json records what the sweep computes (script,
epochs, seed, metric, direction, the options that change a trial's result);
running the same `segtrain sweep` again goes on with the same study, and a
sweep with other such settings is refused unless `--force` starts it over.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segtrain.config import DEFAULT_ROOT, RunConfig
from segtrain.errors import ConfigError
from segtrain.runs.directory import script_digest
from segtrain.runs.paths import read_manifest_file
from segtrain.search.study import DIRECTIONS, PRUNERS, SAMPLERS, default_direction, redacted, storage_url
from segtrain.state import atomic
from segtrain.telemetry import scalars
from segtrain.version import __version__

MANIFEST = "sweep.json"
# What changes a trial's result: a sweep going on must keep them (its trials would not compare otherwise).
IDENTITY_FIELDS = ("epochs", "seed", "format", "save_every", "metric", "direction")


@dataclass
class SweepConfig:
    """Options of a sweep: how many trials, what to optimise, and the run options every trial uses.

    `run` is the template of every trial's `RunConfig` (its `run_dir` and
    `params` are the trial's own).
    """

    run: RunConfig
    trials: int
    sweep_dir: Path | None = None
    storage: str | None = None
    study: str | None = None
    metric: str = "val_loss"
    direction: str | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    jobs: int = 1
    force: bool = False

    def __post_init__(self) -> None:
        if self.sweep_dir is None:
            self.sweep_dir = DEFAULT_ROOT / f"{self.run.script.stem}-sweep"
        self.sweep_dir = Path(self.sweep_dir)
        if self.direction is None:
            self.direction = default_direction(self.metric)
        self.validate()

    @property
    def directory(self) -> Path:
        assert self.sweep_dir is not None
        return self.sweep_dir

    @property
    def study_name(self) -> str:
        return self.study or self.run.script.stem

    @property
    def storage_url(self) -> str:
        return storage_url(self.directory, self.storage)

    def validate(self) -> None:
        for name in ("trials", "jobs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name} must be a positive integer. Received: {name}={value!r}")
        if not self.metric:
            raise ConfigError("--metric must name a metric that training logs, such as val_loss or val_accuracy.")
        for name, allowed in (("direction", DIRECTIONS), ("sampler", SAMPLERS), ("pruner", PRUNERS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"--{name} must be one of {', '.join(allowed)}. Received: {name}={getattr(self, name)!r}"
                )
        if self.directory.exists() and not self.directory.is_dir():
            raise ConfigError(f"--dir {self.directory} is a file: give a directory (it is created if missing).")

    def identity(self) -> dict[str, Any]:
        values = {
            "epochs": self.run.epochs,
            "seed": self.run.seed,
            "format": self.run.format,
            "save_every": self.run.save_every,
            "metric": self.metric,
            "direction": self.direction,
        }
        return {k: values[k] for k in IDENTITY_FIELDS}

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "run"}
        data["sweep_dir"] = str(self.directory)
        data["storage"] = None if self.storage is None else redacted(self.storage)
        data["run"] = self.run.to_json()
        return data

    def trial_config(self, run_dir: Path, params: dict[str, Any]) -> RunConfig:
        """The `RunConfig` of one trial."""
        tensorboard = scalars.for_run(self.run.tensorboard, run_dir)
        return dataclasses.replace(
            self.run, run_dir=run_dir, params=dict(params), force=False, export=None, tensorboard=tensorboard
        )


def open_sweep(cfg: SweepConfig) -> dict[str, Any]:
    """Create the sweep directory's manifest, or check `cfg` against it; returns it (with its token)."""
    root = cfg.directory
    path = root / MANIFEST
    digest = script_digest(cfg.run.script)
    existing = read_sweep_manifest(root) if path.exists() else None
    if existing is not None:
        differences = _differences(existing, cfg, digest)
        if not differences:
            return existing
        if not cfg.force:
            raise ConfigError(
                f"{root} holds a sweep with other settings: "
                + "; ".join(differences)
                + ". Use another --dir (or --study), or --force to start this sweep over (its trials are deleted)."
            )
        _wipe(root, existing, cfg)
    manifest = {
        "segtrain_version": __version__,
        "created": time.time(),
        "token": secrets.token_hex(8),  # tells this directory's trials from other directories' in a shared study
        "script": {"path": str(cfg.run.script.resolve()), "sha256": digest},
        "study": cfg.study_name,
        "config": cfg.to_json(),
        "identity": cfg.identity(),
    }
    root.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, manifest)
    return manifest


def read_sweep_manifest(root: Path) -> dict[str, Any]:
    return read_manifest_file(Path(root) / MANIFEST, "sweep", "token")


def is_sweep_dir(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def _differences(manifest: dict[str, Any], cfg: SweepConfig, digest: str) -> list[str]:
    found = []
    if manifest["script"]["sha256"] != digest:
        found.append(f"the script {cfg.run.script} changed since the sweep began (SHA-256 differs)")
    if manifest.get("study") != cfg.study_name:
        found.append(f"study: {manifest.get('study')!r} in the sweep, {cfg.study_name!r} now")
    saved, now = manifest.get("identity", {}), cfg.identity()
    found += [f"{k}: {saved.get(k)!r} in the sweep, {now[k]!r} now" for k in IDENTITY_FIELDS if saved.get(k) != now[k]]
    return found


def _wipe(root: Path, manifest: dict[str, Any], cfg: SweepConfig) -> None:
    """--force: delete the old sweep's trials and its study."""
    import optuna

    from segtrain.search.study import open_storage

    shutil.rmtree(root / "trials", ignore_errors=True)
    try:
        optuna.delete_study(study_name=manifest.get("study") or cfg.study_name, storage=open_storage(cfg.storage_url))
    except KeyError:
        pass  # no such study (yet)
    (root / MANIFEST).unlink(missing_ok=True)

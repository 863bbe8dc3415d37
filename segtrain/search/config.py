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
from segtrain.options import Command, member, option
from segtrain.paths import SweepPaths
from segtrain.runs.directory import script_digest
from segtrain.runs.opener import Directory, open_directory
from segtrain.search.study import Direction, Pruner, Sampler, default_direction, open_storage, redacted, storage_url
from segtrain.state import search_manifests
from segtrain.state.manifest import ScriptRecord
from segtrain.state.search_manifests import SweepManifest
from segtrain.telemetry import scalars
from segtrain.version import __version__

# What changes a trial's result: a sweep going on must keep them (its trials would not compare otherwise).
IDENTITY_FIELDS = ("epochs", "seed", "format", "save_every", "metric", "direction")
_SWEEP = frozenset({Command.SWEEP})  # `segtrain sweep` and `segtrain.sweep` take these; in --help before --seed


@dataclass
class SweepConfig:
    """Options of a sweep: how many trials, what to optimise, and the run options every trial uses.

    `run` is the template of every trial's `RunConfig` (its `run_dir` and
    `params` are the trial's own).
    """

    run: RunConfig
    trials: int = option(
        "--trials",
        "-n",
        help="Finished trials (complete or pruned) the study should have.",
        commands=_SWEEP,
        before="epochs",
    )
    sweep_dir: Path | None = option(
        "--dir",
        default=None,
        help="Sweep directory [default: checkpoints/<script name>-sweep]; each trial is a run directory under "
        "DIR/trials/.",
        commands=_SWEEP,
        before="seed",
    )
    storage: str | None = option(
        "--storage",
        default=None,
        help="The study's database URL [default: SQLite in DIR/study.db], e.g. postgresql://user:pass@host/db to "
        "share it across machines.",
        commands=_SWEEP,
        before="seed",
    )
    study: str | None = option(
        "--study", default=None, help="The study's name [default: the script's name].", commands=_SWEEP, before="seed"
    )
    metric: str = option(
        "--metric",
        default="val_loss",
        help="The logged metric to optimise; reported after every epoch for pruning.",
        commands=_SWEEP,
        before="seed",
    )
    direction: Direction | None = option(
        "--direction",
        default=None,
        help="[default: maximize for accuracy-like metrics, else minimize].",
        commands=_SWEEP,
        before="seed",
    )
    sampler: Sampler = option(
        "--sampler", default=Sampler.TPE, help="grid: from the script's `grid` dict.", commands=_SWEEP, before="seed"
    )
    pruner: Pruner = option(
        "--pruner",
        default=Pruner.MEDIAN,
        help="Stops a trial that does worse than the others.",
        commands=_SWEEP,
        before="seed",
    )
    jobs: int = option(
        "--jobs",
        "-j",
        default=1,
        help="Trials at once, each in its own workers (one GPU each where GPUs are visible and "
        "CUDA_VISIBLE_DEVICES is not set).",
        commands=_SWEEP,
        before="seed",
    )
    force: bool = option(
        "--force",
        default=False,
        help="Start over if DIR holds a sweep with other settings (its trials and study are deleted).",
        commands=_SWEEP,
        before="signals",
    )

    def __post_init__(self) -> None:
        self.sweep_dir = job_directory(self.sweep_dir, self.run.script, "sweep")
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
        self.direction = member(Direction, self.direction or default_direction(self.metric), "--direction", "direction")
        self.sampler = member(Sampler, self.sampler, "--sampler", "sampler")
        self.pruner = member(Pruner, self.pruner, "--pruner", "pruner")
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


def job_directory(given: Path | str | None, script: Path, kind: str) -> Path:
    """A sweep's or cross-validation's directory: `--dir` as given, else checkpoints/<script name>-<kind>."""
    return DEFAULT_ROOT / f"{script.stem}-{kind}" if given is None else Path(given)


def open_sweep(cfg: SweepConfig) -> SweepManifest:
    """Create the sweep directory's manifest, or check `cfg` against it; returns it (with its token)."""
    return open_directory(_SweepDirectory(cfg, SweepPaths(cfg.directory)), cfg.force)


def read_sweep_manifest(root: Path) -> SweepManifest:
    return search_manifests.read_sweep_manifest(SweepPaths(Path(root)).manifest)


def is_sweep_dir(path: Path) -> bool:
    return SweepPaths(Path(path)).manifest.is_file()


@dataclass
class _SweepDirectory(Directory[SweepManifest]):
    """A sweep directory, as `open_directory` opens it."""

    cfg: SweepConfig
    paths: SweepPaths

    def read(self) -> SweepManifest | None:
        return read_sweep_manifest(self.paths.root) if self.paths.manifest.exists() else None

    def differences(self, existing: SweepManifest) -> list[str]:
        cfg, found = self.cfg, []
        if existing.script.sha256 != script_digest(cfg.run.script):
            found.append(f"the script {cfg.run.script} changed since the sweep began (SHA-256 differs)")
        if existing.study != cfg.study_name:
            found.append(f"study: {existing.study!r} in the sweep, {cfg.study_name!r} now")
        saved, now = existing.identity, cfg.identity()
        found += [
            f"{k}: {saved.get(k)!r} in the sweep, {now[k]!r} now" for k in IDENTITY_FIELDS if saved.get(k) != now[k]
        ]
        return found

    def refusal(self, differences: list[str]) -> str:
        return (
            f"{self.paths.root} holds a sweep with other settings: "
            + "; ".join(differences)
            + ". Use another --dir (or --study), or --force to start this sweep over (its trials are deleted)."
        )

    def wipe(self, existing: SweepManifest | None) -> None:
        """--force: delete the old sweep's trials and its study."""
        import optuna

        cfg = self.cfg
        shutil.rmtree(self.paths.trials, ignore_errors=True)
        study = existing.study if existing is not None and existing.study else cfg.study_name
        try:
            optuna.delete_study(study_name=study, storage=open_storage(cfg.storage_url))
        except KeyError:
            pass  # no such study (yet)
        self.paths.manifest.unlink(missing_ok=True)

    def new(self) -> SweepManifest:
        cfg = self.cfg
        created = SweepManifest(
            token=secrets.token_hex(8),  # tells this directory's trials from other directories' in a shared study
            study=cfg.study_name,
            script=ScriptRecord(str(cfg.run.script.resolve()), script_digest(cfg.run.script)),
            config=cfg.to_json(),
            identity=cfg.identity(),
            segtrain_version=__version__,
            created=time.time(),
        )
        search_manifests.write(self.paths.manifest, created)
        return created

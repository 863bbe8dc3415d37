"""`segtrain cv`'s options, checked once, and its manifest: `CV_DIR/cv.json`.

Like a sweep's manifest, cv.json records what the cross-validation computes
(script, epochs, seed, format, params, folds) and the one split seed every fold
uses; running the same `segtrain cv` again goes on, and one with other such
settings is refused unless `--force` starts it over.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segtrain.config import RunConfig
from segtrain.errors import ConfigError
from segtrain.options import Command, option
from segtrain.paths import CvPaths
from segtrain.runs.directory import script_digest
from segtrain.runs.opener import Directory, open_directory
from segtrain.search.config import job_directory
from segtrain.state import search_manifests
from segtrain.state.manifest import ScriptRecord
from segtrain.state.search_manifests import CvManifest
from segtrain.telemetry import scalars
from segtrain.version import __version__

IDENTITY_FIELDS = ("epochs", "seed", "format", "save_every", "params", "folds")
_CV = frozenset({Command.CV})  # `segtrain cv` and `segtrain.cv` take these


@dataclass
class CvConfig:
    """K-fold cross-validation: `run` is every fold's `RunConfig` (its run_dir and fold are the fold's own)."""

    run: RunConfig
    folds: int = option("--folds", "-k", help="Number of folds (at least 2).", commands=_CV, before="epochs")
    cv_dir: Path | None = option(
        "--dir",
        default=None,
        help="Directory [default: checkpoints/<script name>-cv]; each fold is a run directory under DIR/folds/.",
        commands=_CV,
        before="seed",
    )
    force: bool = option(
        "--force",
        default=False,
        help="Start over if DIR holds a cross-validation with other settings (its folds are deleted).",
        commands=_CV,
        before="signals",
    )

    def __post_init__(self) -> None:
        self.cv_dir = job_directory(self.cv_dir, self.run.script, "cv")
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
        return CvPaths(self.directory).fold(index)

    def fold_config(self, index: int, split_seed: int) -> RunConfig:
        params = dict(self.run.params, fold=index, folds=self.folds)
        fold = {"index": index, "count": self.folds, "seed": split_seed}
        run_dir = self.fold_dir(index)
        tensorboard = scalars.for_run(self.run.tensorboard, run_dir)
        return dataclasses.replace(
            self.run, run_dir=run_dir, params=params, fold=fold, force=False, tensorboard=tensorboard
        )


def open_cv(cfg: CvConfig) -> CvManifest:
    """Create the cross-validation's manifest, or check `cfg` against it (`--force` starts over)."""
    return open_directory(_CvDirectory(cfg, CvPaths(cfg.directory)), cfg.force)


@dataclass
class _CvDirectory(Directory[CvManifest]):
    """A cross-validation's directory, as `open_directory` opens it."""

    cfg: CvConfig
    paths: CvPaths

    def read(self) -> CvManifest | None:
        return search_manifests.read_cv_manifest(self.paths.manifest) if self.paths.manifest.exists() else None

    def differences(self, existing: CvManifest) -> list[str]:
        cfg, saved = self.cfg, existing.identity
        found = [f"{k}: {saved.get(k)!r} then, {v!r} now" for k, v in cfg.identity().items() if saved.get(k) != v]
        if existing.script.sha256 != script_digest(cfg.run.script):
            found.insert(0, f"the script {cfg.run.script} changed (SHA-256 differs)")
        return found

    def refusal(self, differences: list[str]) -> str:
        return (
            f"{self.paths.root} holds a cross-validation with other settings: "
            + "; ".join(differences)
            + ". Use another --dir, or --force to start it over (its folds are deleted)."
        )

    def wipe(self, existing: CvManifest | None) -> None:
        shutil.rmtree(self.paths.folds, ignore_errors=True)

    def new(self) -> CvManifest:
        cfg, seed = self.cfg, self.cfg.run.seed
        created = CvManifest(
            split_seed=seed if seed is not None else secrets.randbelow(2**31),  # one split for every fold
            script=ScriptRecord(str(cfg.run.script.resolve()), script_digest(cfg.run.script)),
            config={"folds": cfg.folds, "run": cfg.run.to_json()},
            identity=cfg.identity(),
            segtrain_version=__version__,
            created=time.time(),
        )
        search_manifests.write(self.paths.manifest, created)
        return created

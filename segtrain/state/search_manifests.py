"""A sweep's manifest (`SWEEP_DIR/sweep.json`) and a cross-validation's (`CV_DIR/cv.json`): typed, versioned, here.

Each records what its job computes (script, the options that change a result:
`identity`) and what every later process must share (a sweep's token and study,
a cross-validation's split seed). Written once when the directory is made (or
made again with `--force`), read by every process after. One without a
"version" key (segtrain up to 32995aa) is version 1; a newer version is refused
(exit 2); keys this version does not know are kept.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from segtrain.errors import ConfigError
from segtrain.state import atomic
from segtrain.state.manifest import ScriptRecord, read_manifest_file

VERSION = 1  # what this segtrain writes, for both; a file without "version" is version 1

M = TypeVar("M", "SweepManifest", "CvManifest")


@dataclass(frozen=True, kw_only=True)
class _Manifest:
    """What both files record besides their own keys; `manifest["key"]` reads the file's value as JSON holds it."""

    identity: dict[str, Any] = field(default_factory=dict)  # what changes a trial's (a fold's) result
    segtrain_version: str = ""
    created: float = 0.0
    version: int = VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept

    def __getitem__(self, key: str) -> Any:
        return to_json(self)[key]  # type: ignore[arg-type]


@dataclass(frozen=True)
class SweepManifest(_Manifest):
    """sweep.json; `identity` is `SweepConfig.identity`."""

    token: str  # tells this directory's trials from other directories' in a shared study
    script: ScriptRecord
    config: dict[str, Any]  # SweepConfig's JSON
    study: str = ""  # the study's name in its storage

    @property
    def metric(self) -> str:
        return str(self.config["metric"])

    @property
    def direction(self) -> str:
        return str(self.config["direction"])

    @property
    def trials(self) -> int:
        return int(self.config["trials"])


@dataclass(frozen=True)
class CvManifest(_Manifest):
    """cv.json; `identity` is `CvConfig.identity`."""

    split_seed: int  # one split for every fold
    script: ScriptRecord
    config: dict[str, Any]  # {"folds": K, "run": RunConfig's JSON}

    @property
    def folds(self) -> int:
        return int(self.config["folds"])


def to_json(manifest: SweepManifest | CvManifest) -> dict[str, Any]:
    data = {f.name: getattr(manifest, f.name) for f in dataclasses.fields(manifest) if f.name != "extra"}
    data.update(script={"path": manifest.script.path, "sha256": manifest.script.sha256}, version=VERSION)
    return {**manifest.extra, **data}


def _from_json(cls: type[M], data: dict[str, Any], path: Path, kind: str) -> M:
    version = data.get("version", 1)
    if not isinstance(version, int) or version > VERSION:
        raise ConfigError(
            f"{path} was written by a newer segtrain ({kind} manifest version {version}; this segtrain reads up "
            f"to {VERSION}). Upgrade segtrain, or use another --dir."
        )
    known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    values = {k: v for k, v in data.items() if k in known and k != "script"}
    script = data.get("script") or {}
    try:
        return cls(
            **values,
            script=ScriptRecord(str(script.get("path", "")), str(script.get("sha256", ""))),
            extra={k: v for k, v in data.items() if k not in known},
        )
    except (TypeError, AttributeError) as e:
        raise ConfigError(f"{path} is not a {kind} manifest that segtrain wrote ({e}).") from e


def read_sweep_manifest(path: Path) -> SweepManifest:
    """The sweep.json at `path`; a ConfigError (exit 2) that names it where it is not one segtrain wrote."""
    return _from_json(SweepManifest, read_manifest_file(path, "sweep", "token"), path, "sweep")


def read_cv_manifest(path: Path) -> CvManifest:
    """The cv.json at `path`; a ConfigError (exit 2) that names it where it is not one segtrain wrote."""
    return _from_json(CvManifest, read_manifest_file(path, "cross-validation", "split_seed"), path, "cross-validation")


def write(path: Path, manifest: SweepManifest | CvManifest) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, to_json(manifest))

"""Opening a run directory: a new run, a resumed one, or a refusal that says why.

Running the same `segtrain fit` again on an unfinished run resumes it, so a
scheduler or a restart policy can simply repeat the command; on a finished run
it only reports. A run of another script or other options is refused unless
`force` starts it over.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from segtrain.config import IDENTITY_FIELDS, RunConfig
from segtrain.errors import ConfigError, ScriptError
from segtrain.outcomes import RunStatus
from segtrain.run.paths import RunPaths, read_manifest, read_run, write_manifest
from segtrain.version import __version__


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"segtrain": __version__, "python": platform.python_version()}
    for dist in ("keras", "tensorflow", "tensorflow-cpu", "jax", "torch"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def script_digest(path: Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise ScriptError(f"Cannot read the training script {path}: {e.strerror or e}") from e


def open_run(cfg: RunConfig) -> dict[str, Any]:
    """Create the run's manifest, or check `cfg` against the existing one.

    Returns the manifest. Raises ConfigError when the run directory holds
    another run and `cfg.force` is not set.
    """
    paths = RunPaths(cfg.directory)
    digest = script_digest(cfg.script)
    try:
        existing = read_manifest(paths)
    except ConfigError:
        if not cfg.force:
            raise
        _wipe(paths)  # --force: a manifest that does not parse is a run to start over
        existing = None
    if existing is not None:
        differences = _differences(existing, cfg, digest)
        if not differences:
            existing["config"] = cfg.to_json()  # options that may change (keep, isolation, ...) do
            existing["script"]["path"] = str(Path(cfg.script).resolve())
            return existing
        if not cfg.force:
            raise ConfigError(
                f"{cfg.run_dir} holds a run with other settings: "
                + "; ".join(differences)
                + ". Use another --run-dir, `segtrain resume` to go on with the saved settings, "
                "or --force to start this run over (its checkpoints are deleted)."
            )
        _wipe(paths)
    elif paths.root.exists() and any(paths.checkpoint_dirs()):
        if not cfg.force:
            raise ConfigError(f"{cfg.run_dir} holds checkpoints but no manifest; use --force to start over.")
        _wipe(paths)
    manifest = {
        "segtrain_version": __version__,
        "created": time.time(),
        "host": socket.gethostname(),
        "config": cfg.to_json(),
        "script": {"path": str(Path(cfg.script).resolve()), "sha256": digest},
        "versions": _versions(),
        "data_seed": cfg.seed if cfg.seed is not None else secrets.randbelow(2**31),
        "status": RunStatus.NEW,
    }
    paths.root.mkdir(parents=True, exist_ok=True)
    write_manifest(paths, manifest)
    return manifest


def _differences(manifest: dict[str, Any], cfg: RunConfig, digest: str) -> list[str]:
    found = []
    if manifest["script"]["sha256"] != digest:
        found.append(f"the script {cfg.script} changed since the run began (SHA-256 differs)")
    saved = dict(RunConfig.defaults(), **manifest["config"])  # a field newer than the run has its default there
    found += [
        f"{name}: {saved.get(name)!r} in the run, {getattr(cfg, name)!r} now"
        for name in IDENTITY_FIELDS
        if saved.get(name) != getattr(cfg, name)
    ]
    return found


def _wipe(paths: RunPaths) -> None:
    for path in paths.checkpoint_dirs() + paths.leftovers():
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    for path in (paths.manifest, paths.epochs_log, paths.segments_log, paths.history_json, paths.history_csv):
        path.unlink(missing_ok=True)


def load_config(run_dir: Path) -> RunConfig:
    """The options a run was started with, for `segtrain resume`."""
    _, manifest = read_run(run_dir)
    data = dict(manifest["config"], run_dir=str(run_dir))
    return RunConfig.from_json(data)

"""Opening a run directory: a new run, a resumed one, or a refusal that says why.

Running the same `segtrain fit` again on an unfinished run resumes it, so a
scheduler or a restart policy can simply repeat the command; on a finished run
it only reports. More `--epochs` than the run had extend it, finished or not.
A run of another script or other options is refused unless `force` starts it
over. A run keeps a copy of its script (`runs.script_copy`),
which `resume` trains with where the original is gone.
"""

from __future__ import annotations

import importlib.metadata
import platform
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from segtrain.config import IDENTITY_FIELDS, RunConfig
from segtrain.errors import ConfigError, PeersLost
from segtrain.outcomes import RunStatus
from segtrain.runs import script_copy
from segtrain.runs.paths import RunPaths, read_manifest, read_run, update_manifest, write_manifest
from segtrain.state import checkpoint
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
    return script_copy.sha256(script_copy.read_script(path))


def open_run(cfg: RunConfig) -> dict[str, Any]:
    """Create the run's manifest, or check `cfg` against the existing one.

    Returns the manifest. Raises ConfigError when the run directory holds
    another run and `cfg.force` is not set. The run's copy of its script
    (`RUN/script/`) is written before a new manifest, from the bytes hashed for it.
    """
    paths = RunPaths(cfg.directory)
    data = script_copy.read_script(cfg.script)
    digest = script_copy.sha256(data)
    try:
        existing = read_manifest(paths)
    except ConfigError:
        if not cfg.force:
            raise
        _wipe(paths)  # --force: a manifest that does not parse is a run to start over
        existing = None
    if existing is not None:
        differences = _differences(existing, cfg, digest, paths)
        if not differences:
            if existing["config"]["epochs"] != cfg.epochs:  # extended: what the run now trains to, for resume
                update_manifest(paths, config=dict(existing["config"], epochs=cfg.epochs))
            existing["config"] = cfg.to_json()  # options that may change (keep, isolation, ...) do
            _keep_script(paths, existing, cfg.script, data)
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
    original = Path(cfg.script).resolve()
    paths.root.mkdir(parents=True, exist_ok=True)
    copy = script_copy.keep(paths, original.name, data)  # before the manifest: no manifest without its copy
    manifest = {
        "segtrain_version": __version__,
        "created": time.time(),
        "host": socket.gethostname(),
        "config": cfg.to_json(),
        "script": {"path": str(original), "sha256": digest, "copy": copy},
        "versions": _versions(),
        "data_seed": cfg.seed if cfg.seed is not None else secrets.randbelow(2**31),
        "status": RunStatus.NEW,
    }
    write_manifest(paths, manifest)
    return manifest


def wait_for_run(cfg: RunConfig) -> dict[str, Any]:
    """Many hosts, process 1 and up: the run that process 0 opens, checked against `cfg`, once it is there.

    Nothing is written: process 0 alone creates, updates and starts the run over.
    """
    assert cfg.hosts is not None
    paths = RunPaths(cfg.directory)
    deadline = time.monotonic() + cfg.hosts.timeout
    while (manifest := read_manifest(paths)) is None:
        if time.monotonic() > deadline:
            raise PeersLost(
                f"Process 0 has not opened the run in {paths.root} within {cfg.hosts.timeout} s (--peer-timeout). "
                "Start the same command on every host, with the run directory on storage that every host sees."
            )
        time.sleep(0.5)
    differences = [] if cfg.force else _differences(manifest, cfg, script_digest(cfg.script), paths)
    if differences:
        raise ConfigError(
            f"Process 0's run in {cfg.run_dir} has other settings than this process: "
            + "; ".join(differences)
            + ". Run the same command on every host."
        )
    return manifest


def _keep_script(paths: RunPaths, manifest: dict[str, Any], script: Path, data: bytes) -> None:
    """A run going on: record the script's path (the original's, where it trains from the run's copy) and make sure
    the copy is there (a run made before copies were kept gets one now: `data` has the manifest's SHA-256)."""
    entry = dict(manifest["script"])
    if script_copy.is_copy(paths, script):
        manifest["config"]["script"] = entry["path"]  # the original stays recorded: the copy stands in for it
    else:
        entry["path"] = str(Path(script).resolve())
    entry["copy"] = script_copy.keep(paths, Path(entry["path"]).name, data)
    if entry != manifest["script"]:
        update_manifest(paths, script=entry)
    manifest["script"] = entry


def _differences(manifest: dict[str, Any], cfg: RunConfig, digest: str, paths: RunPaths) -> list[str]:
    found = []
    if manifest["script"]["sha256"] != digest:
        copy = script_copy.copy_of(paths, manifest)
        kept = f"; the run keeps the script it began with in {copy}" if copy is not None and copy.is_file() else ""
        found.append(f"the script {cfg.script} changed since the run began (SHA-256 differs{kept})")
    saved = dict(RunConfig.defaults(), **manifest["config"])  # a field newer than the run has its default there
    found += [
        f"{name}: {saved.get(name)!r} in the run, {getattr(cfg, name)!r} now"
        for name in IDENTITY_FIELDS
        if saved.get(name) != getattr(cfg, name)
    ]
    if cfg.epochs != saved["epochs"]:  # a run may be extended (or shortened), down to what it has trained
        newest = checkpoint.latest(paths)
        done = 0 if newest is None else newest.epoch + (1 if newest.batch else 0)
        if cfg.epochs < done:
            found.append(f"epochs: {cfg.epochs} now, but the run has trained {done} already (it may only grow)")
    return found


def _wipe(paths: RunPaths) -> None:
    for path in paths.checkpoint_dirs() + paths.leftovers():
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    for path in (paths.manifest, paths.epochs_log, paths.segments_log, paths.history_json, paths.history_csv):
        path.unlink(missing_ok=True)
    shutil.rmtree(paths.script_dir, ignore_errors=True)


def load_config(run_dir: Path) -> RunConfig:
    """The options a run was started with, for `segtrain resume`: never `force`, which would start it over.

    Its script: the path the manifest records, or the run's copy where that is
    gone (`script_copy.to_resume`); `open_run` then refuses either if it changed.
    """
    paths, manifest = read_run(run_dir)
    script = script_copy.to_resume(paths, manifest)
    data = dict(manifest["config"], run_dir=str(run_dir), script=str(script), force=False)
    return RunConfig.from_json(data)

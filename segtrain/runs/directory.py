"""Opening a run directory: a new run, a resumed one, or a refusal that says why.

Running the same `segtrain fit` again on an unfinished run resumes it, so a
scheduler or a restart policy can simply repeat the command; on a finished run
it only reports. More `--epochs` than the run had extend it, finished or not.
A run of another script or other options is refused unless `force` starts it
over. A run keeps a copy of its script (`runs.script_copy`),
which `resume` trains with where the original is gone.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
import secrets
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from segtrain.config import IDENTITY_FIELDS, RunConfig
from segtrain.errors import ConfigError, PeersLost
from segtrain.paths import RunPaths
from segtrain.runs import script_copy
from segtrain.runs.opener import Directory, open_directory
from segtrain.state import checkpoint, manifest
from segtrain.state.manifest import RunManifest, ScriptRecord, read_manifest, read_run, write_manifest
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


def open_run(cfg: RunConfig) -> RunManifest:
    """Create the run's manifest, or check `cfg` against the existing one.

    Returns the manifest. Raises ConfigError when the run directory holds
    another run and `cfg.force` is not set. The run's copy of its script
    (`RUN/script/`) is written before a new manifest, from the bytes hashed for it.
    """
    return open_directory(_RunDirectory(cfg, RunPaths(cfg.directory), script_copy.read_script(cfg.script)), cfg.force)


@dataclass
class _RunDirectory(Directory[RunManifest]):
    """A run directory, as `open_directory` opens it."""

    cfg: RunConfig
    paths: RunPaths
    data: bytes  # the script's bytes, hashed once

    @property
    def digest(self) -> str:
        return script_copy.sha256(self.data)

    def read(self) -> RunManifest | None:
        return read_manifest(self.paths)

    def differences(self, existing: RunManifest) -> list[str]:
        return _differences(existing, self.cfg, self.digest, self.paths)

    def refusal(self, differences: list[str]) -> str:
        return (
            f"{self.cfg.run_dir} holds a run with other settings: "
            + "; ".join(differences)
            + ". Use another --run-dir, `segtrain resume` to go on with the saved settings, "
            "or --force to start this run over (its checkpoints are deleted)."
        )

    def orphaned(self) -> str | None:
        if self.paths.root.exists() and any(self.paths.checkpoint_dirs()):
            return f"{self.cfg.run_dir} holds checkpoints but no manifest; use --force to start over."
        return None

    def wipe(self, existing: RunManifest | None) -> None:
        _wipe(self.paths)

    def keep(self, existing: RunManifest) -> RunManifest:
        cfg, paths = self.cfg, self.paths
        if existing.config["epochs"] != cfg.epochs:  # extended: what the run now trains to, for resume
            manifest.record_epochs(paths, cfg.epochs)
        existing = dataclasses.replace(existing, config=cfg.to_json())  # options that may change (keep, ...) do
        return _keep_script(paths, existing, cfg.script, self.data)

    def new(self) -> RunManifest:
        cfg, paths = self.cfg, self.paths
        original = Path(cfg.script).resolve()
        paths.root.mkdir(parents=True, exist_ok=True)
        copy = script_copy.keep(paths, original.name, self.data)  # before the manifest: no manifest without its copy
        created = RunManifest(
            config=cfg.to_json(),
            script=ScriptRecord(str(original), self.digest, copy),
            data_seed=cfg.seed if cfg.seed is not None else secrets.randbelow(2**31),
            segtrain_version=__version__,
            created=time.time(),
            host=socket.gethostname(),
            versions=_versions(),
        )
        return write_manifest(paths, created)


def settings_differ(cfg: RunConfig) -> bool:
    """Whether the run in `cfg`'s directory has another script or other settings than `cfg`, its epochs aside:
    what `--force` starts over (a launched script's later stages with it, before its epochs are known)."""
    paths = RunPaths(cfg.directory)
    try:
        existing = read_manifest(paths)
    except ConfigError:
        return True
    if existing is None:
        return False
    as_recorded = dataclasses.replace(cfg, epochs=existing.config["epochs"])
    return bool(_differences(existing, as_recorded, script_digest(cfg.script), paths))


def wait_for_run(cfg: RunConfig) -> RunManifest:
    """Many hosts, process 1 and up: the run that process 0 opens, checked against `cfg`, once it is there.

    Nothing is written: process 0 alone creates, updates and starts the run over.
    """
    assert cfg.hosts is not None
    paths = RunPaths(cfg.directory)
    deadline = time.monotonic() + cfg.hosts.timeout
    while (found := read_manifest(paths)) is None:
        if time.monotonic() > deadline:
            raise PeersLost(
                f"Process 0 has not opened the run in {paths.root} within {cfg.hosts.timeout} s (--peer-timeout). "
                "Start the same command on every host, with the run directory on storage that every host sees."
            )
        time.sleep(0.5)
    differences = [] if cfg.force else _differences(found, cfg, script_digest(cfg.script), paths)
    if differences:
        raise ConfigError(
            f"Process 0's run in {cfg.run_dir} has other settings than this process: "
            + "; ".join(differences)
            + ". Run the same command on every host."
        )
    return found


def _keep_script(paths: RunPaths, existing: RunManifest, script: Path, data: bytes) -> RunManifest:
    """A run going on: record the script's path (the original's, where it trains from the run's copy) and make sure
    the copy is there (a run made before copies were kept gets one now: `data` has the manifest's SHA-256)."""
    entry, config = existing.script, existing.config
    if script_copy.is_copy(paths, script):
        config = dict(config, script=entry.path)  # the original stays recorded: the copy stands in for it
    else:
        entry = dataclasses.replace(entry, path=str(Path(script).resolve()))
    entry = dataclasses.replace(entry, copy=script_copy.keep(paths, Path(entry.path).name, data))
    if entry != existing.script:
        manifest.record_script(paths, entry)
    return dataclasses.replace(existing, script=entry, config=config)


def _differences(existing: RunManifest, cfg: RunConfig, digest: str, paths: RunPaths) -> list[str]:
    found = []
    if existing.script.sha256 != digest:
        copy = script_copy.copy_of(paths, existing)
        kept = f"; the run keeps the script it began with in {copy}" if copy is not None and copy.is_file() else ""
        found.append(f"the script {cfg.script} changed since the run began (SHA-256 differs{kept})")
    saved = dict(RunConfig.defaults(), **existing.config)  # a field newer than the run has its default there
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
    shutil.rmtree(paths.stages, ignore_errors=True)


def load_config(run_dir: Path) -> RunConfig:
    """The options a run was started with, for `segtrain resume`: never `force`, which would start it over.

    Its script: the path the manifest records, or the run's copy where that is
    gone (`script_copy.to_resume`); `open_run` then refuses either if it changed.
    """
    paths, existing = read_run(run_dir)
    script = script_copy.to_resume(paths, existing)
    data = dict(existing.config, run_dir=str(run_dir), script=str(script), force=False)
    return RunConfig.from_json(data)

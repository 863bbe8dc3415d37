"""The run directory: one object names every file, and the run's manifest and lock.

Layout (see README, "The run directory"):

    RUN_DIR/
      manifest.json     options, script path and SHA-256, versions, status
      script/model.py   a copy of the training script, the file whose SHA-256 the manifest records
      lock              pid of the process that owns the run (flock-ed)
      ckpt-000006/      a checkpoint after 6 epochs; complete once its
        model.keras       state.json is committed (last) and its checksums match
        state.json
      ckpt-000007.000012/  a checkpoint inside epoch 7, after 12 batches
      ckpt-000010-end/  the final model (after callbacks' on_train_end)
      epochs.jsonl      one line per epoch: time, memory, metrics (append-only)
      segments.jsonl    one line per segment: epochs, time, memory, boundary cost
      history.json      the merged Keras history, history.csv the same as CSV
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segtrain.errors import ConfigError, RunLockedError
from segtrain.state import atomic

CKPT_PREFIX = "ckpt-"
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class RunPaths:
    """Every path of a run directory; no path strings elsewhere."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def script_dir(self) -> Path:
        """Where the run keeps its copy of the training script, under the script's own file name."""
        return self.root / "script"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def epochs_log(self) -> Path:
        return self.root / "epochs.jsonl"

    @property
    def segments_log(self) -> Path:
        return self.root / "segments.jsonl"

    @property
    def history_json(self) -> Path:
        return self.root / "history.json"

    @property
    def history_csv(self) -> Path:
        return self.root / "history.csv"

    def checkpoint(self, epoch: int, batch: int = 0, final: bool = False) -> Path:
        name = f"{CKPT_PREFIX}{epoch:06d}"
        if batch:
            name += f".{batch:06d}"
        if final:
            name += "-end"
        return self.root / name

    def checkpoint_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.name.startswith(CKPT_PREFIX) and p.is_dir())

    def leftovers(self) -> list[Path]:
        """Temporary files and folders of writes that never committed."""
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if p.name.startswith(TMP_PREFIX)]


def read_manifest_file(path: Path, kind: str, required: str) -> dict[str, Any]:
    """A manifest that segtrain wrote (a run's, a sweep's, a cross-validation's): a JSON object with `required`.

    Anything else is a ConfigError (exit 2) that names the file: it is bad
    input, and nothing in it may be trusted or overwritten without `--force`.
    """
    try:
        manifest = atomic.read_json(path)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{path} cannot be read ({type(e).__name__}: {e}): it is not a {kind} manifest that segtrain wrote. "
            "Restore it, or start over in another directory (or with --force)."
        ) from e
    if not isinstance(manifest, dict) or required not in manifest:
        raise ConfigError(f"{path} is not a {kind} manifest that segtrain wrote (no {required!r} in it).")
    return manifest


def read_manifest(paths: RunPaths) -> dict[str, Any] | None:
    """The run's manifest, or None where there is none yet; a ConfigError (exit 2) where it does not parse."""
    if not paths.manifest.exists():
        return None
    return read_manifest_file(paths.manifest, "run", "config")


def read_run(run_dir: Path | str) -> tuple[RunPaths, dict[str, Any]]:
    """The paths and manifest of an existing run: the one way `resume`, `report`, `status` and `load_model` open one.

    Raises ConfigError (exit 2) naming what is wrong: no such directory, a
    file in its place, no manifest, a manifest that does not parse.
    """
    paths = RunPaths(Path(run_dir))
    if paths.root.exists() and not paths.root.is_dir():
        raise ConfigError(f"{run_dir} is a file, not a run directory: give the --run-dir of a `segtrain fit`.")
    if not paths.root.is_dir():
        raise ConfigError(
            f"{run_dir} does not exist: give the run directory of a `segtrain fit` "
            "(its --run-dir, by default checkpoints/<script name>)."
        )
    manifest = read_manifest(paths)
    if manifest is None:
        raise ConfigError(
            f"{run_dir} is not a segtrain run directory (no manifest.json): give the --run-dir "
            "of a `segtrain fit` (by default checkpoints/<script name>)."
        )
    return paths, manifest


def write_manifest(paths: RunPaths, manifest: dict[str, Any]) -> None:
    manifest["updated"] = time.time()
    atomic.write_json(paths.manifest, manifest)


def update_manifest(paths: RunPaths, **fields: Any) -> dict[str, Any]:
    manifest = read_manifest(paths) or {}
    manifest.update(fields)
    write_manifest(paths, manifest)
    return manifest


class RunLock:
    """An exclusive lock on a run directory, held for the life of a process.

    `flock` is released by the kernel when its holder dies, however it dies, so
    the lock of a dead process is simply taken over. The supervisor holds it;
    its workers die with it (PR_SET_PDEATHSIG), so none outlives the lock.
    """

    def __init__(self, paths: RunPaths):
        self.paths = paths
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = lock_holder(self.paths)
            raise RunLockedError(
                f"{self.paths.root} is in use by another segtrain process (pid {holder or 'unknown'}). "
                "Wait for it to finish, stop it, or use another --run-dir."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(paths: RunPaths) -> int | None:
    """The pid written in the lock file, if any (alive or not)."""
    try:
        text = paths.lock.read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def is_locked(paths: RunPaths) -> bool:
    """Whether a live process holds the run's lock (without taking it)."""
    if not paths.lock.exists():
        return False
    fd = os.open(paths.lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False

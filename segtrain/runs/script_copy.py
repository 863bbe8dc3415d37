"""The run's own copy of its training script, and which file loading or resuming a run imports.

A run keeps the script it trains with in `RUN/script/<its file name>`: the
file whose SHA-256 the manifest records. `open_run` writes it (atomically)
before the manifest of a new run, rewrites it when `--force` starts a run over,
and gives a run made before copies were kept its copy when it resumes. So a run
directory moved elsewhere (another folder, a laptop after a cluster) still
loads, exports and resumes where the original path is gone. The copy keeps the
script's file name, so the module keeps its name (`segtrain_script_<stem>`) and
what Keras saved by module name still resolves; only the script is kept, not
modules it imports from its own folder.

Loading a run imports its script, as unpickling does. A file whose SHA-256
differs from the manifest's is never imported without a warning, and
`resume` refuses one (`runs.directory.open_run`).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

from segtrain.errors import ScriptError
from segtrain.paths import RunPaths
from segtrain.state import atomic
from segtrain.state.manifest import RunManifest

log = logging.getLogger(__name__)


def read_script(path: Path | str) -> bytes:
    """The script's bytes: what its SHA-256 is taken of and what the run's copy holds (one read for both)."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ScriptError(f"Cannot read the training script {path}: {e.strerror or e}") from e


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keep(paths: RunPaths, name: str, data: bytes) -> str:
    """Make `RUN/script/<name>` hold `data` (atomically; untouched where it does already).

    Any other script kept there (of a run that `--force` replaced) is removed.
    Returns the copy's path relative to the run directory, as the manifest records it.
    """
    folder = paths.script_dir
    target = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    if not (target.is_file() and target.read_bytes() == data):
        atomic.write_bytes(target, data)
    for other in folder.iterdir():
        if other != target and other.name != "__pycache__":
            shutil.rmtree(other, ignore_errors=True) if other.is_dir() else other.unlink(missing_ok=True)
    return target.relative_to(paths.root).as_posix()


def is_copy(paths: RunPaths, script: Path | str) -> bool:
    """Whether `script` is the run's own copy (a run resumed where its original is gone)."""
    return Path(script).resolve().parent == paths.script_dir.resolve()


def copy_of(paths: RunPaths, manifest: RunManifest | dict[str, Any]) -> Path | None:
    """The run's copy of its script, as its manifest names it; None for a run made before copies were kept."""
    relative = _typed(manifest).script.copy
    return None if not relative else paths.root / relative


def to_load(paths: RunPaths, manifest: RunManifest | dict[str, Any]) -> Path:
    """The script to import to load the run's model (`load_model`, `export`).

    The original where its SHA-256 is the manifest's; else the run's copy, where
    the original is gone (quietly, at INFO) or changed (a warning that names
    both). A file whose SHA-256 is not the manifest's is imported only where no
    other is left, with a warning that says so.
    """
    manifest = _typed(manifest)
    original, digest = Path(manifest.script.path), manifest.script.sha256
    copy = copy_of(paths, manifest)
    if _matches(original, digest):
        return original
    trusted = copy if copy is not None and _matches(copy, digest) else None
    if original.is_file():
        if trusted is not None:
            log.warning(
                "%s changed since the run in %s trained (its SHA-256 is not the manifest's): "
                "loading with the run's copy of the script it trained with, %s.",
                original,
                paths.root,
                trusted,
            )
            return trusted
        log.warning(
            "%s changed since the run in %s trained (its SHA-256 is not the manifest's), and the run%s: "
            "importing the changed script.",
            original,
            paths.root,
            " keeps no copy of it" if copy is None else f"'s copy {copy} is not the script it trained with either",
        )
        return original
    if trusted is not None:
        log.info("%s is not there: loading with the run's copy of the script, %s.", original, trusted)
        return trusted
    if copy is not None and copy.is_file():
        log.warning(
            "%s is not there, and the run's copy %s is not the script the run trained with either "
            "(its SHA-256 is not the manifest's): importing it anyway.",
            original,
            copy,
        )
        return copy
    raise _missing(paths, original)


def to_resume(paths: RunPaths, manifest: RunManifest | dict[str, Any]) -> Path:
    """The script `resume` trains with: the original where it is there, else the run's copy.

    Either is checked against the manifest's SHA-256 by `open_run`, which refuses
    a script that changed: only the copy of an unchanged script stands in for a
    missing original.
    """
    manifest = _typed(manifest)
    original = Path(manifest.script.path or manifest.config["script"])
    if original.is_file():
        return original
    copy = copy_of(paths, manifest)
    if copy is not None and copy.is_file():
        log.info("%s is not there: resuming with the run's copy of the script, %s.", original, copy)
        return copy
    raise _missing(paths, original)


def _typed(manifest: RunManifest | dict[str, Any]) -> RunManifest:
    """The manifest, typed: a caller may give manifest.json's JSON as it reads it."""
    return manifest if isinstance(manifest, RunManifest) else RunManifest.from_json(manifest)


def _matches(path: Path, digest: str) -> bool:
    try:
        return sha256(path.read_bytes()) == digest
    except OSError:
        return False


def _missing(paths: RunPaths, original: Path) -> ScriptError:
    return ScriptError(
        f"The training script of {paths.root}, {original}, is not there, and the run keeps no copy of it "
        "(runs made before segtrain kept one). Put the script back at that path."
    )

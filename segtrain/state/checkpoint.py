"""Checkpoints: model files in one of three formats, plus a state file committed last.

Commit protocol (after Orbax's atomic-rename strategy):

1. write the model files and `state.json` into `RUN_DIR/.tmp-<pid>-ckpt-.../`,
   fsync every file;
2. rename the folder to its final name `ckpt-...`, fsync the run directory.

A checkpoint is complete when `state.json` parses and every file it lists has
the checksum (CRC-32) recorded there; `is_complete` is the one function that decides,
and readers trust nothing else. A damaged newest checkpoint is skipped with a
warning and the one before it is used. Old checkpoints are deleted only after a
newer one is complete.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segtrain.errors import CheckpointError
from segtrain.outcomes import SegmentOutcome
from segtrain.paths import TMP_PREFIX, RunPaths
from segtrain.state import atomic, formats, model_state
from segtrain.state.checkpoint_state import CheckpointState, read_state, write_state

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


@dataclass
class Checkpoint:
    """A complete checkpoint found on disk."""

    path: Path
    state: CheckpointState

    @classmethod
    def read(cls, path: Path) -> Checkpoint:
        """The checkpoint at `path` by its state.json (OSError, ValueError where that is missing or damaged)."""
        return cls(path, read_state(path / STATE_FILE))

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def batch(self) -> int:
        return self.state.batch

    @property
    def final(self) -> bool:
        return self.state.final

    @property
    def stopped(self) -> bool:
        """Whether a callback (or a sweep's pruner) ended the run at this checkpoint: the stop is part of it."""
        return self.final and self.state.outcome == SegmentOutcome.STOPPED

    @property
    def pruned(self) -> bool:
        """Whether the stop came from the job's hook (a sweep's pruner), not from the script's callbacks."""
        return self.stopped and self.state.pruned

    def ends_run(self, epochs: int) -> bool:
        """Whether the run is done at this checkpoint: stopped early, or final with all of `epochs` trained.

        A stopped run stays stopped whatever `epochs` now asks (training it on is
        an explicit request: `resume --continue`); a finished one grows with `epochs`.
        """
        return self.stopped or (self.final and self.epoch >= epochs)

    @property
    def order(self) -> tuple[int, int, bool]:
        return (self.epoch, self.batch, self.final)

    @property
    def model_path(self) -> Path:
        return self.path / self.format.model_file

    @property
    def format(self) -> formats.CheckpointFormat:
        return formats.get(self.state.format)


@dataclass
class Snapshot:
    """What a checkpoint holds besides the model: filled by the training side.

    `state`: the checkpoint's state (`save` fills in its position, format and
    files), or a mapping of state.json keys (a test's few).
    """

    epoch: int
    batch: int = 0
    final: bool = False
    state: CheckpointState | dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, Any] = field(default_factory=dict)  # saved to arrays.npz


def save(model: Any, paths: RunPaths, fmt: str, snapshot: Snapshot) -> Checkpoint:
    """Write a checkpoint of `model` and commit it; return it."""
    final = paths.checkpoint(snapshot.epoch, snapshot.batch, snapshot.final)
    tmp = paths.root / f"{TMP_PREFIX}{os.getpid()}-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        checkpoint_format = formats.get(fmt)
        checkpoint_format.save(model, tmp / checkpoint_format.model_file)
        if snapshot.arrays:
            with open(tmp / "arrays.npz", "wb") as f:
                np.savez(f, **snapshot.arrays)
        files = sorted(p for p in tmp.iterdir() if p.is_file())
        with ThreadPoolExecutor(max_workers=4) as pool:  # checksum (from the page cache) while fsync writes
            digests = {p.name: pool.submit(atomic.file_digest, p) for p in files}
            for p in files:
                atomic.fsync_file(p)
            checksums = {name: digest.result() for name, digest in digests.items()}
        sizes = {p.name: p.stat().st_size for p in files}
        given = snapshot.state
        if not isinstance(given, CheckpointState):  # a mapping of state.json keys
            given = CheckpointState.from_json(dict(given, format=fmt, epoch=snapshot.epoch, files={}))
        state = dataclasses.replace(
            given,
            format=fmt,
            epoch=snapshot.epoch,
            batch=snapshot.batch,
            final=snapshot.final,
            files=checksums,
            sizes=sizes,
        )
        write_state(tmp / STATE_FILE, state)
        atomic.fsync_dir(tmp)
        if final.exists():  # a stale checkpoint at the same position: replace it
            stale = paths.root / f"{TMP_PREFIX}{os.getpid()}-stale-{final.name}"
            os.replace(final, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, final)
        atomic.fsync_dir(paths.root)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"Could not write checkpoint {final.name} in {paths.root}: {e.strerror or e}. "
            "The previous complete checkpoint is intact; free space or fix permissions, then resume."
        ) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Checkpoint(final, state)


def is_complete(path: Path, hashed: bool = True) -> tuple[bool, str]:
    """Decide whether the checkpoint at `path` is complete; say why not.

    `hashed=False` checks sizes instead of checksums: for a checkpoint this
    supervisor has just seen committed, where re-reading every byte (0.2 s for a
    50M-parameter model) would buy nothing. Any run that starts or resumes checks every byte.
    """
    state_file = path / STATE_FILE
    if not state_file.exists():
        return False, "no state.json"
    try:
        state = read_state(state_file)
    except (ValueError, KeyError, OSError) as e:
        return False, f"unreadable state.json ({e})"
    sizes = state.sizes
    for name, digest in state.files.items():
        p = path / name
        if not p.exists():
            return False, f"{name} is missing"
        if not hashed and name in sizes:
            if p.stat().st_size != sizes[name]:
                return False, f"{name} has {p.stat().st_size} bytes, {sizes[name]} when saved (truncated)"
        elif atomic.file_digest(p) != digest:
            return False, f"{name} does not match its checksum (truncated or corrupted)"
    return True, ""


def committed(paths: RunPaths) -> list[Checkpoint]:
    """Checkpoints whose state.json reads, oldest first; not verified (see `is_complete`)."""
    found = []
    for path in paths.checkpoint_dirs():
        try:
            found.append(Checkpoint.read(path))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda c: c.order)


def latest(paths: RunPaths, hashed: bool = True) -> Checkpoint | None:
    """The newest complete checkpoint: verified newest first, so only as many are read as needed.

    `hashed=False` checks the recorded sizes only (`segtrain status`: cheap on a big model); resuming checks every byte.
    """
    for ckpt in reversed(committed(paths)):
        ok, why = is_complete(ckpt.path, hashed)
        if ok:
            return ckpt
        log.warning("Skipping damaged checkpoint %s: %s; using the one before it.", ckpt.path.name, why)
    return None


def named_or_latest(paths: RunPaths, name: str | None, just_committed: bool = False) -> Checkpoint | None:
    """The checkpoint called `name` if it is complete, else the newest complete one (with a warning).

    `None` means a new run: no checkpoint to start from. `just_committed`: the
    caller saw it committed moments ago, so sizes are checked instead of digests.
    """
    if name is None:
        return None
    path = paths.root / name
    ok, why = is_complete(path, hashed=not just_committed)
    if ok:
        return Checkpoint.read(path)
    log.warning("Checkpoint %s is damaged (%s); using the newest complete one before it.", name, why)
    newest = latest(paths)
    if newest is None:
        raise CheckpointError(f"Checkpoint {name} is damaged ({why}) and no complete checkpoint is left.")
    return newest


def prune(paths: RunPaths, keep: int, newest: Checkpoint) -> None:
    """Delete all but the `keep` newest complete checkpoints (and stale temporaries).

    Called only after `newest` is committed, so a complete checkpoint always remains.
    """
    complete = [c for c in committed(paths) if c.order <= newest.order]
    doomed = complete[:-keep] if keep < len(complete) else []
    for ckpt in doomed:
        shutil.rmtree(ckpt.path, ignore_errors=True)
    for path in paths.checkpoint_dirs():  # never-committed leftovers (no state.json) older than newest
        if not (path / STATE_FILE).exists() and path != newest.path:
            shutil.rmtree(path, ignore_errors=True)


def clean_leftovers(paths: RunPaths) -> None:
    """Remove temporary folders of writes that never committed (a crash mid-save)."""
    for path in paths.leftovers():
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def load_model_files(
    ckpt: Checkpoint, build_model: Any, custom_objects: dict, sample_batch: Any, model: Any = None
) -> Any:
    """Load the model (with every optimizer it holds) that `ckpt` holds.

    `build_model` is called for the formats that store no architecture, and
    for a model with optimizers of its own (its own `compile()`, which Keras'
    loader cannot call); it returns a compiled model. `sample_batch()` gives the
    first training batch `(x, y, sample_weight)`, read only where a model's
    variables do not exist before data has gone through it (see `_build`).
    `model`: a model from the same script to load the variables into instead (a
    `.keras` file's variables load into it as they would into its own model).
    """
    fmt = ckpt.format
    own_optimizers = bool(ckpt.state.fingerprint.get("optimizers"))
    if model is None and fmt.stores_architecture and not own_optimizers:
        return fmt.load(ckpt.model_path, custom_objects)
    if model is None:
        model = build_model()
    _build(model, sample_batch)
    fmt.load_into(model, ckpt.model_path)
    return model


def _build(model: Any, sample_batch: Any) -> None:
    """Create every variable (model and optimizers) that loading fills; a no-op for a model that has trained.

    A model's own further optimizers (`model_state.own_optimizers`) only know
    which variables they train once a step has run: one step on the first
    batch creates their variables, and the load then overwrites everything the
    step changed (weights, every optimizer, iterations; seed states are
    restored after; the fingerprint check proves it).
    """
    own = model_state.own_optimizers(model)
    if own:
        if not all(o.built for o in own.values()):
            x, y, sample_weight = sample_batch()
            model.train_on_batch(x, y, sample_weight=sample_weight)
            model.reset_metrics()
        return
    if not model.built:
        model(sample_batch()[0], training=False)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)

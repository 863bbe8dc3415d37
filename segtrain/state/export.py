"""The final model, written for use after training: a `.keras` file, or a TF SavedModel directory for serving."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from segtrain.errors import CheckpointError
from segtrain.paths import TMP_PREFIX
from segtrain.state import atomic


def export(model: Any, path: Path) -> None:
    """Write `model` to `path` atomically: `.keras`, else a SavedModel (`model.export`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")
    try:
        if path.suffix == ".keras":
            model.save(tmp)
            atomic.fsync_file(tmp)
        else:
            model.export(str(tmp), verbose=False)
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
        atomic.fsync_dir(path.parent)
    except OSError as e:
        raise CheckpointError(f"Could not export the model to {path}: {e.strerror or e}") from e
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()

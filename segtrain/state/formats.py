"""Checkpoint formats, one class each: how the model and its optimizer go to disk and come back.

* `keras`: the native `.keras` file (architecture, compile state, optimizer).
* `h5`: `model.weights.h5` with the optimizer's variables; `build_model()`
  rebuilds the model. (Legacy whole-model `.h5` is never used: it silently
  drops Adam's moments.)
* `savedmodel`: `tf.train.Checkpoint(model=..., optimizer=...)`, the SavedModel
  variables format (TensorFlow only: `Backend.formats` says which backend
  supports which).

None of them saves RNG seed states or metric states; `segtrain.state.model_state`
does, and checks after every load that the variables came back as saved.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, ClassVar

from segtrain.errors import CheckpointError
from segtrain.paths import TMP_PREFIX

KERAS_WEIGHTS_MEMBER = "model.weights.h5"  # the variables inside a .keras file (Keras' `_VARS_FNAME_H5`)


class CheckpointFormat:
    """One way of writing a model with its optimizer state into a checkpoint folder."""

    name: ClassVar[str]
    model_file: ClassVar[str]  # its file (or folder) inside the checkpoint
    stores_architecture: ClassVar[bool] = False  # whether `load` needs no model from `build_model()`

    def save(self, model: Any, target: Path) -> None:
        raise NotImplementedError

    def load_into(self, model: Any, target: Path) -> None:
        """Fill `model` (built, with its optimizer's variables) from `target`."""
        raise NotImplementedError

    def load(self, target: Path, custom_objects: dict[str, Any]) -> Any:
        """A new model from `target` alone; only for a format that `stores_architecture`."""
        raise NotImplementedError(f"the {self.name} format stores no architecture")


class KerasFormat(CheckpointFormat):
    name = "keras"
    model_file = "model.keras"
    stores_architecture = True

    def save(self, model: Any, target: Path) -> None:
        model.save(target)

    def load_into(self, model: Any, target: Path) -> None:
        """Load the file's variables into the script's own model, from a copy of its weights member.

        Keras' `load_weights` reads a `.keras` file's weights member inside the
        zip, seeking in it: 2-3x slower than reading the member whole, as its own
        `load_model` does (0.07 against 0.03 s for a 10 MB checkpoint, 0.9-1.6
        against 0.3-1.1 s for 215 MB, here). So the member is copied to a
        `.weights.h5` file in the run directory (a `.tmp-` folder: a crash's is
        removed as any leftover) and loaded from there: the same variables, by
        Keras' same walk. Where it cannot be written (a full or read-only
        disk), the variables load from the archive.
        """
        try:
            scratch = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-load-", dir=target.parent.parent))
        except OSError:
            model.load_weights(target)
            return
        try:
            weights = scratch / KERAS_WEIGHTS_MEMBER
            try:
                with zipfile.ZipFile(target) as archive, archive.open(KERAS_WEIGHTS_MEMBER) as member:
                    with open(weights, "wb") as copy:
                        shutil.copyfileobj(member, copy, 16 << 20)
            except (OSError, KeyError, zipfile.BadZipFile):
                weights = target  # not written, or not a weights member to copy: Keras reads the archive (and says why)
            model.load_weights(weights)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def load(self, target: Path, custom_objects: dict[str, Any]) -> Any:
        import keras

        return keras.saving.load_model(target, custom_objects=custom_objects, compile=True)


class H5Format(CheckpointFormat):
    name = "h5"
    model_file = "model.weights.h5"

    def save(self, model: Any, target: Path) -> None:
        model.save_weights(target)

    def load_into(self, model: Any, target: Path) -> None:
        model.load_weights(target)


class SavedModelFormat(CheckpointFormat):
    name = "savedmodel"
    model_file = "model"

    def save(self, model: Any, target: Path) -> None:
        import tensorflow as tf

        tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(str(target))

    def load_into(self, model: Any, target: Path) -> None:
        import tensorflow as tf

        status = tf.train.Checkpoint(model=model, optimizer=model.optimizer).read(str(target))
        try:
            status.assert_existing_objects_matched()
        except AssertionError as e:
            raise CheckpointError(f"{target.parent}: the checkpoint does not match the model: {e}") from e


CHECKPOINT_FORMATS: dict[str, CheckpointFormat] = {f.name: f for f in (KerasFormat(), H5Format(), SavedModelFormat())}


def get(name: str) -> CheckpointFormat:
    return CHECKPOINT_FORMATS[name]

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

from pathlib import Path
from typing import Any, ClassVar

from segtrain.errors import CheckpointError


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
        model.load_weights(target)  # a .keras file's variables load into the script's own model

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

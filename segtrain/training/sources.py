"""What the training data is, and where it comes from, for `training.data`.

Arrays, a tf.data pipeline (or a function epoch -> one), a `keras.utils.PyDataset`
and a generator are told apart here without importing TensorFlow or Keras;
`split` tells the training data from the validation data; `check_stream`
refuses, for data that `fit` iterates, what only in-memory arrays allow.
`Source` names the data in messages: the script's `load_data()`, or under
`segtrain run` the script's own `model.fit(...)` call, since such a script
defines no `load_data()`.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segtrain.errors import ScriptError

if TYPE_CHECKING:
    from segtrain.training.data import Fold


@dataclass(frozen=True)
class Source:
    """Where the training data comes from, as messages name it: the script's `load_data()`, or under `segtrain run`
    the script's own `model.fit(...)` call (such a script defines no `load_data()`)."""

    script: Path
    launched: bool = False

    @property
    def data(self) -> str:
        if self.launched:
            return f"the data passed to model.fit(...) in {self.script.name}"
        return "the data from `load_data()`"

    def _either(self, fit_verb: str, load_data_words: str) -> str:
        """`model.fit(...) in SCRIPT <fit_verb>` under `segtrain run`, else `load_data_words`."""
        return f"model.fit(...) in {self.script.name} {fit_verb}" if self.launched else load_data_words

    @property
    def must(self) -> str:
        return self._either("must be given", "`load_data()` must return")

    @property
    def gave(self) -> str:
        return self._either("was given", "`load_data()` returned")

    @property
    def model(self) -> str:
        return f"the model in {self.script.name}" if self.launched else "the model from `build_model()`"

    @property
    def returns(self) -> str:
        return self._either("is given", "load_data() returns")

    @property
    def steps_fix(self) -> str:
        """How a script says how many batches an epoch trains."""
        return "Pass model.fit(..., steps_per_epoch=N)" if self.launched else "Set fit_kwargs = {'steps_per_epoch': N}"

    def kwarg(self, name: str, value: Any = ...) -> str:
        shown = "..." if value is ... else repr(value)
        if self.launched:
            return f"model.fit({name}={shown})"
        return f"fit_kwargs['{name}']" + ("" if value is ... else f"={shown}")


def is_tf_dataset(obj: Any) -> bool:
    cls = type(obj)
    return any(c.__module__.startswith("tensorflow") and c.__name__.endswith("DatasetV2") for c in cls.__mro__)


def is_pydataset(obj: Any) -> bool:
    """A `keras.utils.PyDataset` (or `keras.utils.Sequence`, the same class)."""
    return any(c.__name__ == "PyDataset" and c.__module__.startswith("keras") for c in type(obj).__mro__)


def is_generator(obj: Any) -> bool:
    return isinstance(obj, types.GeneratorType)


def is_stream(obj: Any) -> bool:
    """Data that `fit` iterates rather than arrays: a tf.data pipeline, a function epoch -> one, a PyDataset, a
    generator."""
    return (
        is_tf_dataset(obj)
        or is_pydataset(obj)
        or is_generator(obj)
        or (callable(obj) and not isinstance(obj, (tuple, list)))
    )


def check_stream(
    train: Any, validation: Any, validation_split: float, fold: Fold | None, share: tuple[int, int], source: Source
) -> None:
    """Refuse what only in-memory arrays allow, for data that `fit` iterates (a pipeline, a PyDataset, a generator)."""
    what = kind(train)
    if fold is not None and validation is None:
        raise ScriptError(
            f"{source.script}: cross-validation splits in-memory arrays itself; for {what}, return (train, val) "
            "for the fold that `load_data(params)` reads from params['fold'] and params['folds']."
        )
    if validation_split:
        also = "" if source.launched else " (or return (train, val) from load_data())"
        raise ScriptError(
            f"{source.script}: validation_split works on in-memory arrays, as in Keras; for {what}, "
            f"pass validation_data{also}."
        )
    if share[1] > 1:
        raise ScriptError(
            f"{source.script}: with many hosts, load_data() must return in-memory arrays, which segtrain splits so "
            f"that each process feeds its part of every batch; {what} is not split across hosts. Return the arrays "
            "(x, y) themselves, or train on one host (--distribute data-parallel uses all of its devices)."
        )


def kind(train: Any) -> str:
    if is_pydataset(train):
        return f"a keras.utils.PyDataset ({type(train).__name__})"
    return "a generator" if is_generator(train) else "a tf.data pipeline"


def split(raw: Any, source: Source) -> tuple[Any, Any]:
    """Tell `(x, y)` from `((x, y), (x_val, y_val))` and `(train, val)` where `train` is a dataset or a generator."""
    if is_stream(raw):
        return raw, None
    if isinstance(raw, list):
        raw = tuple(raw)
    if not isinstance(raw, tuple) or len(raw) != 2:
        what = (
            "(x, y), ((x, y), (x_val, y_val)), a tf.data.Dataset, (train_ds, val_ds), a keras.utils.PyDataset, "
            "a generator or a function epoch -> Dataset"
        )
        if source.launched:
            what = "arrays (x and y), a tf.data.Dataset, a keras.utils.PyDataset or a generator"
        raise ScriptError(
            f"{source.script}: {source.must} {what}. Received: {type(raw).__name__}"
            + (f" of length {len(raw)}" if isinstance(raw, tuple) else "")
        )
    first, second = raw
    if is_stream(first):
        return first, second
    if isinstance(first, (tuple, list)) and isinstance(second, (tuple, list)):
        return tuple(first), tuple(second)
    return (first, second), None

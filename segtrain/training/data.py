"""The training data, in an order that depends only on (seed, epoch).

Keras' own `fit(shuffle=True)` draws each epoch's permutation from process
state, so a reload changes the order (on JAX) or every epoch replays the same
one (on TensorFlow). segtrain owns the order instead: epoch `e` sees the
permutation `default_rng([seed, e])`, however the run was segmented and in
whatever process it resumes. Batches are addressed by a global step
(`epoch * steps_per_epoch + batch`), so a segment, or a resume in the middle of
an epoch, is simply a range of steps.

tf.data users get the same guarantee by returning a function `epoch ->
tf.data.Dataset` from `load_data()` (see the README); a plain dataset is passed
to `fit` as it is. A `keras.utils.PyDataset` is read by index too, and a
generator as it comes (`training.pydataset`).

With many hosts, process `i` of `n` feeds the `i`-th of `n` equal parts of every
batch (`share`), and Keras makes the global batch of the parts: the batches
are the same as on one host.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segtrain import backends
from segtrain.errors import ScriptError
from segtrain.training.pydataset import (
    GeneratorBatches,
    PyDatasetBatches,
    inexact,
    prepare_generator,
    prepare_pydataset,
)
from segtrain.training.sources import (
    Source,
    check_stream,
    is_generator,
    is_pydataset,
    is_stream,
    is_tf_dataset,
    split,
)


def reshuffling_ops(ds: Any) -> int:
    """How many `shuffle` ops of a tf.data pipeline draw a new order on every iteration (their default).

    Such an order follows how many iterators the process has made of the
    dataset, not the epoch: measured on TF 2.21, a fresh process that makes k
    iterators first sees epoch k's order, but a resumed or segmented run does
    not make them the way one long `fit` does.
    """
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())
    return sum(1 for node in graph.node if node.op.startswith("Shuffle") and node.attr["reshuffle_each_iteration"].b)


def _is_array(obj: Any) -> bool:
    return hasattr(obj, "shape") and hasattr(obj, "dtype") and not is_tf_dataset(obj)


def is_arrays(obj: Any) -> bool:
    """In-memory arrays (numpy or alike), or a dict of them: what segtrain batches itself."""
    if isinstance(obj, dict):
        return bool(obj) and all(_is_array(v) for v in obj.values())
    return _is_array(obj)


def _to_numpy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: np.asarray(v) for k, v in obj.items()}
    return np.asarray(obj)


def _length(obj: Any) -> int:
    if isinstance(obj, dict):
        return len(next(iter(obj.values())))
    return len(obj)


def _take(obj: Any, idx: np.ndarray | slice) -> Any:
    if isinstance(obj, dict):
        return {k: v[idx] for k, v in obj.items()}
    return obj[idx]


def _lengths(obj: Any) -> set[int]:
    if isinstance(obj, dict):
        return {len(v) for v in obj.values()}
    return {len(obj)}


@dataclass
class ArrayBatches:
    """In-memory arrays cut into batches by global step, in a per-epoch order."""

    arrays: tuple  # (x, y) or (x, y, sample_weight)
    batch_size: int
    seed: int
    steps_per_epoch: int
    shuffle: bool = True  # False: every epoch in the given order (`fit(shuffle=False)`)
    share: tuple[int, int] = (0, 1)  # many hosts: (this process, processes): its part of every batch

    def __post_init__(self) -> None:
        self._order_epoch = -1
        self._order: np.ndarray | None = None

    @property
    def num_samples(self) -> int:
        return _length(self.arrays[0])

    def order(self, epoch: int) -> np.ndarray:
        """The permutation of sample indices for `epoch`."""
        if epoch != self._order_epoch:
            if self.shuffle:
                self._order = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
            else:
                self._order = np.arange(self.num_samples)
            self._order_epoch = epoch
        assert self._order is not None
        return self._order

    def batch(self, step: int) -> tuple:
        epoch, b = divmod(step, self.steps_per_epoch)
        idx = _part(self.order(epoch)[b * self.batch_size : (b + 1) * self.batch_size], self.share)
        return tuple(_take(a, idx) for a in self.arrays)

    def fit_input(self, first_step: int, last_step: int) -> Any:
        """Steps [first_step, last_step) as something `fit` iterates in order."""
        return backends.current().array_input(self, first_step, last_step)


def _part(idx: np.ndarray, share: tuple[int, int]) -> np.ndarray:
    """Process `share[0]`'s part of a batch's indices: the `share[0]`-th of `share[1]` equal parts."""
    index, count = share
    size = len(idx) // count
    return idx[index * size : (index + 1) * size]


def _batch_sizes(n: int, batch_size: int, steps: int) -> set[int]:
    """The sizes of the `steps` batches of `batch_size` that `n` samples make: full, but the last may be smaller."""
    return {min(batch_size, n - step * batch_size) for step in (0, steps - 1)}


def _check_share(script: Path, share: tuple[int, int], sizes: set[int], what: str) -> None:
    uneven = sorted(size for size in sizes if size % share[1])
    if uneven:
        raise ScriptError(
            f"{script}: with {share[1]} processes every {what} batch is split into {share[1]} equal parts, but "
            f"batches of {', '.join(map(str, uneven))} samples do not split evenly. Use a batch size (and a number "
            "of samples, or steps_per_epoch) that gives every batch a multiple of the number of processes."
        )


def _shares(n: int, batch_size: int, share: tuple[int, int]) -> np.ndarray:
    """The rows that process `share[0]` feeds of `n` rows batched by `batch_size` in order."""
    return np.concatenate([_part(np.arange(s, min(s + batch_size, n)), share) for s in range(0, n, batch_size)])


@dataclass
class DatasetBatches:
    """A tf.data pipeline: `make(epoch)` gives that epoch's dataset.

    With a function from the script, each epoch's order is the script's to fix
    (e.g. `ds.shuffle(n, seed=seed + epoch)`), and resuming is exact. With a
    plain dataset, `make` returns the same object every epoch.
    """

    make: Callable[[int], Any]
    steps_per_epoch: int

    def fit_input(self, first_step: int, last_step: int) -> Any:
        parts = []
        step = first_step
        while step < last_step:
            epoch, b = divmod(step, self.steps_per_epoch)
            n = min(self.steps_per_epoch - b, last_step - step)
            parts.append(self.make(epoch).skip(b).take(n))
            step += n
        ds = parts[0]
        for p in parts[1:]:
            ds = ds.concatenate(p)
        return ds


@dataclass
class TrainingData:
    """The script's data, normalised: training batches and optional validation data."""

    train: ArrayBatches | DatasetBatches | PyDatasetBatches | GeneratorBatches
    validation: Any
    fit_kwargs: dict
    plain_dataset: Any = None  # the training tf.data.Dataset, where load_data() gave one rather than a function

    @property
    def steps_per_epoch(self) -> int:
        return self.train.steps_per_epoch

    def callbacks(self, shift: int = 0) -> list[Any]:
        """Keras callbacks that `fit` calls first, which the data needs: a PyDataset's epoch hooks (`shift`:
        Keras' index of the run's epoch 0)."""
        return self.train.callbacks(shift) if isinstance(self.train, PyDatasetBatches) else []

    def inexact(self, source: Source, seeded: bool) -> list[str]:
        """Why a segmented or resumed run of this data will not equal one long `fit`, with the fix: said before it
        trains. Only a seeded run is exact at all, but a generator's restart is said either way."""
        reasons = []
        if seeded and self.plain_dataset is not None and reshuffling_ops(self.plain_dataset):
            fix = (
                "pass a keras.utils.PyDataset (batches by index), or shuffle with a seed and "
                "reshuffle_each_iteration=False (one order for every epoch)"
                if source.launched
                else "return a function of the epoch instead: `lambda epoch: base.shuffle(n, seed=epoch).batch(b)`"
            )
            reasons.append(
                f"{source.returns} a tf.data pipeline whose shuffle() draws a new order on every iteration "
                "(reshuffle_each_iteration=True, the default). A segmented or resumed run sees other orders than one "
                f"long fit, so it will not equal it bit for bit. For exact runs, {fix} (see the README)."
            )
        reason = inexact(self.train, source, seeded)
        return reasons if reason is None else [*reasons, reason]


@dataclass(frozen=True)
class Fold:
    """Fold `index` of `count` (cross-validation): a seeded, shuffled share of the samples validates, the rest train.

    Every fold of a cross-validation uses the same `seed`, so the folds
    partition the samples: each sample validates in exactly one fold.
    """

    index: int
    count: int
    seed: int

    def split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the training and the validation samples, each in ascending order."""
        if n < self.count:
            raise ValueError(f"{n} samples cannot make {self.count} folds")
        parts = np.array_split(np.random.default_rng([self.seed, self.count]).permutation(n), self.count)
        validation = np.sort(parts[self.index])
        train = np.sort(np.concatenate([p for i, p in enumerate(parts) if i != self.index]))
        return train, validation


def prepare(
    raw: Any,
    fit_kwargs: dict,
    seed: int,
    script: Path,
    fold: Fold | None = None,
    share: tuple[int, int] = (0, 1),
    launched: bool = False,
) -> TrainingData:
    """Normalise what `load_data()` returned; raise ScriptError if it cannot be used.

    `fold`: cross-validation. In-memory arrays without validation data are
    split into that fold's training and validation samples; data with its own
    validation data is taken as the script's own split (it reads
    `params["fold"]`). `share`: many hosts, (this process, processes): each
    feeds its part of every batch, training and validation. `launched`: the
    data of a script's own `model.fit(...)` call (`segtrain run`), as messages say.
    """
    source = Source(script, launched)
    kwargs = dict(fit_kwargs)
    kwargs.pop("verbose", None)  # segtrain shows its own progress
    shuffle = kwargs.pop("shuffle", True)
    if not isinstance(shuffle, bool):
        raise ScriptError(
            f"{script}: {source.kwarg('shuffle')} must be True or False (segtrain batches arrays itself). "
            f"Received: {shuffle!r}"
        )
    validation_split = kwargs.pop("validation_split", 0.0) or 0.0
    if not isinstance(validation_split, (int, float)) or not 0 <= validation_split < 1:
        raise ScriptError(f"{script}: validation_split must be a fraction in [0, 1). Received: {validation_split!r}")
    if validation_split and fold is not None:
        raise ScriptError(
            f"{script}: cross-validation makes each fold's validation split; leave validation_split out of fit()."
        )
    train, validation = split(raw, source)
    if is_stream(train):
        check_stream(train, validation, validation_split, fold, share, source)
    if is_pydataset(train):
        return TrainingData(prepare_pydataset(train, kwargs, seed, shuffle, source), validation, kwargs)
    if is_generator(train):
        return TrainingData(prepare_generator(train, kwargs, source), validation, kwargs)
    if callable(train) and not is_tf_dataset(train):
        return _prepare_dataset(train, validation, kwargs, source)
    if is_tf_dataset(train):
        data = _prepare_dataset(lambda epoch: train, validation, kwargs, source)
        data.plain_dataset = train
        return data
    x, y = train
    if not is_arrays(x) or (y is not None and not is_arrays(y)):
        raise ScriptError(
            f"{script}: {source.must} arrays (numpy, or dicts of them), a tf.data.Dataset, a keras.utils.PyDataset, "
            f"a generator or a function epoch -> Dataset. Received x of type {type(x).__name__}."
        )
    x, y = _to_numpy(x), (None if y is None else _to_numpy(y))
    arrays = [x] if y is None else [x, y]
    sample_weight = kwargs.pop("sample_weight", None)
    if sample_weight is not None:
        arrays.append(np.asarray(sample_weight))
    lengths = set().union(*(_lengths(a) for a in arrays))
    if len(lengths) != 1:
        raise ScriptError(
            f"{script}: {source.gave} inputs and targets of different lengths {sorted(lengths)}; "
            "every array must have one row per sample."
        )
    n = lengths.pop()
    if n == 0:
        raise ScriptError(f"{script}: {source.gave} no samples.")
    if validation_split and validation is None:  # as Keras: the last fraction, before any shuffling
        split_at = math.floor(n * (1.0 - validation_split))
        if split_at == 0:
            raise ScriptError(
                f"{script}: validation_split={validation_split} of {n} samples leaves no training samples. "
                "Use a smaller fraction."
            )
        validation = tuple(_take(a, slice(split_at, None)) for a in arrays)
        arrays = [_take(a, slice(0, split_at)) for a in arrays]
        n = split_at
    if fold is not None and validation is None:
        try:
            train_idx, val_idx = fold.split(n)
        except ValueError as e:
            raise ScriptError(f"{script}: {source.gave} too few samples for cross-validation: {e}.") from e
        validation = tuple(_take(a, val_idx) for a in arrays)
        arrays = [_take(a, train_idx) for a in arrays]
        n = len(train_idx)
    batch_size = kwargs.pop("batch_size", None) or 32
    batches_per_epoch = math.ceil(n / batch_size)
    steps = kwargs.pop("steps_per_epoch", None) or batches_per_epoch
    if steps > batches_per_epoch:
        raise ScriptError(
            f"{script}: {source.kwarg('steps_per_epoch', steps)} exceeds the {batches_per_epoch} batches "
            f"of {batch_size} that {n} samples make. Lower it, or leave it out."
        )
    kwargs.setdefault("validation_batch_size", batch_size)
    if validation is not None:
        validation = tuple(_to_numpy(v) for v in validation)
    if share[1] > 1:
        _check_share(script, share, _batch_sizes(n, batch_size, steps), "training")
        if validation is not None:
            size, rows = kwargs["validation_batch_size"], _length(validation[0])
            _check_share(script, share, _batch_sizes(rows, size, math.ceil(rows / size)), "validation")
            validation = tuple(_take(v, _shares(rows, size, share)) for v in validation)
            kwargs["validation_batch_size"] = size // share[1]
    batches = ArrayBatches(tuple(arrays), batch_size, seed, steps, shuffle, share)
    return TrainingData(batches, validation, kwargs)


def _prepare_dataset(make: Callable[[int], Any], validation: Any, kwargs: dict, source: Source) -> TrainingData:
    kwargs.pop("batch_size", None)
    steps = kwargs.pop("steps_per_epoch", None)
    if steps is None:
        cardinality = int(make(0).cardinality())
        if cardinality < 1:
            raise ScriptError(
                f"{source.script}: the training dataset has no known length (infinite or unknown "
                f"cardinality). {source.steps_fix}."
            )
        steps = cardinality
    return TrainingData(DatasetBatches(make, steps), validation, kwargs)

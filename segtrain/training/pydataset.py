"""Keras' own data classes as training data: a `keras.utils.PyDataset` (alias `keras.utils.Sequence`) and a generator.

A PyDataset is read by index, so a segment, or a resume in the middle of an
epoch, is a range of its batches, as for arrays (`data.ArrayBatches`). Epoch
`e` trains the batches `ds[i]` for `i` in `range(steps_per_epoch)` (all
`len(ds)` of them by default), in an order drawn from `default_rng([seed, e])`
where `fit(shuffle=True)` asks Keras for a new order each epoch (its default),
else in index order. An infinite PyDataset (`num_batches` None) is read by
global step instead: batch `e * steps_per_epoch + i`.

What a PyDataset's hooks do to it is its own state: the common pattern
reshuffles an index array in `on_epoch_end()` with NumPy's global generator,
so epoch `k`'s batches follow from every hook call before it. segtrain makes
those calls itself, one `on_epoch_begin()` as each epoch begins and one
`on_epoch_end()` as it ends (Keras' own calls reach a wrapper that ignores
them), and seeds NumPy's and Python's global generators from `(seed, epoch)`
right before each. A worker that resumes a run at epoch `s` makes the calls of
epochs `0 .. s-1` first, under the same seeds: the dataset is then in the
state one long `fit` left it in, however the run was segmented.

The dataset's `workers` threads (processes with `use_multiprocessing`) fetch
up to `max_queue_size` batches ahead, as Keras' would, but only within the
epoch under way. Keras' own workers, where `fit` takes a batch to build the
model, fetch ahead of the first epoch and keep those batches for it (measured
with Keras 3.15 on JAX: the first epoch trained them before its own, and the
next epochs' batches fetched before their reshuffle), so Keras sees a wrapper with
no workers of its own.

A generator cannot be rewound nor skipped ahead: each worker's `load_data()`
starts it afresh, so a segmented or resumed run trains on other batches than
one long `fit`, which `inexact` says before training.
"""

from __future__ import annotations

import logging
import multiprocessing
import random
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from typing import Any

import numpy as np

from segtrain.errors import ScriptError
from segtrain.training.sources import Source

log = logging.getLogger(__name__)

_NOTHING = object()


def seed_globals(seed: int, epoch: int, phase: int) -> None:
    """Seed NumPy's and Python's global generators from `(seed, epoch, phase)`: phase 0 right before the epoch's
    `on_epoch_begin()`, 1 right before its `on_epoch_end()`."""
    numpy_seed, python_seed = np.random.SeedSequence([seed, epoch, phase]).generate_state(2)
    np.random.seed(int(numpy_seed))
    random.seed(int(python_seed))


def _num_batches(ds: Any, source: Source) -> int | None:
    try:
        n = ds.num_batches
    except NotImplementedError:
        raise ScriptError(
            f"{source.script}: {source.data} is a {type(ds).__name__} (a keras.utils.PyDataset) that defines "
            "neither __len__ nor num_batches: define __len__ (its number of batches per epoch)."
        ) from None
    return None if n is None else int(n)


@dataclass
class PyDatasetBatches:
    """A PyDataset's batches by global step; its hooks called once per epoch, each under a seed of `(seed, epoch)`."""

    dataset: Any
    steps_per_epoch: int
    seed: int
    length: int | None  # its batches per epoch; None: an infinite PyDataset, read by global step
    shuffle: bool = True  # a new order of the batches each epoch (`fit(shuffle=True)`, Keras' default)

    def __post_init__(self) -> None:
        self.hooks = 0  # how many of begin(0), end(0), begin(1), end(1), ... the dataset has had
        self.begun = 0  # how many times an epoch has begun in this process: a `fit` call's wrapper then fetches ahead
        self._order: tuple[int, np.ndarray] = (-1, np.arange(0))  # (epoch, its order)
        self._behind = False
        ds = self.dataset
        threads = getattr(ds, "workers", 1) or 1
        processes = bool(getattr(ds, "use_multiprocessing", False))
        many = threads > 1 or processes
        self.workers = _Workers(ds, threads, processes, getattr(ds, "max_queue_size", 10) or 10) if many else None

    @property
    def epoch(self) -> int:
        """The epoch whose batches the dataset serves: the newest one begun (epoch 0 before any)."""
        return max(self.hooks - 1, 0) // 2

    def begin(self, epoch: int) -> None:
        """Epoch `epoch` begins: every hook call up to and including its `on_epoch_begin()`."""
        self._advance(2 * epoch + 1)
        self.begun += 1

    def end(self, epoch: int) -> None:
        """Epoch `epoch` has ended: every hook call up to and including its `on_epoch_end()`."""
        self._advance(2 * epoch + 2)

    def _advance(self, hooks: int) -> None:
        if self.workers is not None:
            self.workers.stop()  # nothing fetches while the hooks change the dataset
        if hooks < self.hooks:  # an earlier epoch again in this process (never in a worker of its own)
            if not self._behind:
                log.warning(
                    "%s cannot go back to epoch %d: its hooks have run to epoch %d in this process. Its batches "
                    "follow on from there.",
                    type(self.dataset).__name__,
                    (hooks - 1) // 2 + 1,
                    self.epoch + 1,
                )
                self._behind = True
            return
        while self.hooks < hooks:
            epoch, phase = divmod(self.hooks, 2)
            seed_globals(self.seed, epoch, phase)
            hook = getattr(self.dataset, "on_epoch_end" if phase else "on_epoch_begin", None)
            if hook is not None:
                hook()
            self.hooks += 1

    def index(self, batch: int) -> int:
        """The dataset's index of batch `batch` of the current epoch."""
        epoch = self.epoch
        if self.length is None:
            return epoch * self.steps_per_epoch + batch
        if not self.shuffle:
            return batch
        cached, order = self._order
        if cached != epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.length)
            self._order = (epoch, order)
        return int(order[batch])

    def fit_input(self, first_step: int, last_step: int) -> Any:
        """Steps [first_step, last_step), whole epochs or the rest of one, as a PyDataset of one epoch's batches.

        The wrapper Keras iterates serves batch `first + i` of the current epoch,
        where `first` is where a resumed epoch goes on; its epochs advance
        through the callback `callbacks()` gives `fit`.
        """
        first = first_step % self.steps_per_epoch
        count = min(self.steps_per_epoch - first, last_step - first_step)
        return _steps_class()(self, first, count)

    def callbacks(self, shift: int = 0) -> list[Any]:
        """What `fit` calls, first of its callbacks, as each epoch begins and ends: the dataset's hooks.

        `shift`: Keras' index of the run's epoch 0 (`FitCall.shift`)."""
        return [_hooks_class()(self, shift)]


def _steps_class() -> type:
    import keras

    class PyDatasetSteps(keras.utils.PyDataset):
        """`count` batches of the script's PyDataset from batch `first` of each epoch.

        Keras fetches them one at a time; once this `fit` call's first epoch has
        begun, the dataset's own workers fetch ahead (`_Workers`, see the module).
        """

        def __init__(self, batches: PyDatasetBatches, first: int, count: int):
            super().__init__(workers=1, use_multiprocessing=False)
            self.batches, self.first, self.count, self.begun = batches, first, count, batches.begun

        @property
        def num_batches(self) -> int:
            return self.count

        def __getitem__(self, i: int) -> Any:
            if not 0 <= i < self.count:
                raise IndexError(f"batch {i} of {self.count}")
            batches, workers = self.batches, self.batches.workers
            if workers is None or batches.begun == self.begun:  # no workers, or before this fit's first epoch
                return batches.dataset[batches.index(self.first + i)]
            ahead = range(self.first + i, self.first + min(i + 1 + workers.ahead, self.count))
            return workers.get([batches.index(b) for b in ahead])

    return PyDatasetSteps


def _hooks_class() -> type:
    import keras

    class PyDatasetHooks(keras.callbacks.Callback):
        def __init__(self, batches: PyDatasetBatches, shift: int):
            super().__init__()
            self.batches, self.shift = batches, shift

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.batches.begin(epoch - self.shift)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.batches.end(epoch - self.shift)

    return PyDatasetHooks


_DATASET: Any = None  # in a worker process: the dataset it fetches from


def _start_process(dataset: Any) -> None:
    global _DATASET
    _DATASET = dataset


def _fetch(index: int) -> Any:
    return _DATASET[index]


class _Workers:
    """A PyDataset's `workers` threads (processes with `use_multiprocessing`), fetching up to `max_queue_size` batches
    ahead of the one Keras asks for, within the epoch under way: `stop()` (before each hook) lets those under way
    finish and drops them, and processes start again afterwards, with the dataset as the hooks left it."""

    def __init__(self, dataset: Any, workers: int, processes: bool, ahead: int):
        self.dataset, self.count, self.processes, self.ahead = dataset, max(workers, 1), processes, ahead
        self.pool: Any = None
        self.pending: dict[int, Any] = {}  # the dataset's index -> its fetch

    def get(self, indices: list[int]) -> Any:
        """The batch at `indices[0]`, fetching the others meanwhile."""
        if self.pool is None:
            if self.processes:
                self.pool = multiprocessing.Pool(self.count, _start_process, (self.dataset,))
            else:
                self.pool = ThreadPool(self.count)
        for index in indices:
            if index not in self.pending:
                fetch = _fetch if self.processes else self.dataset.__getitem__
                self.pending[index] = self.pool.apply_async(fetch, (index,))
        return self.pending.pop(indices[0]).get()

    def stop(self) -> None:
        for fetch in self.pending.values():
            fetch.wait()
        self.pending.clear()
        if self.processes and self.pool is not None:
            self.pool.terminate()
            self.pool = None


@dataclass
class GeneratorBatches:
    """A Python generator: each step takes its next batch. Step 0 is its first, kept for the model's build."""

    generator: Any
    steps_per_epoch: int

    def __post_init__(self) -> None:
        self._first: Any = _NOTHING

    def first(self) -> Any:
        if self._first is _NOTHING:
            self._first = next(self.generator)
        return self._first

    def fit_input(self, first_step: int, last_step: int) -> Any:
        def steps() -> Any:
            for step in range(first_step, last_step):
                if step == 0:
                    yield self.first()
                    continue
                try:
                    batch = next(self.generator)
                except StopIteration:
                    return
                yield batch

        return steps()


def prepare_pydataset(train: Any, kwargs: dict, seed: int, shuffle: bool, source: Source) -> PyDatasetBatches:
    """The script's PyDataset as batches by step; `kwargs` loses what segtrain does itself (batch_size, steps)."""
    kwargs.pop("batch_size", None)
    length = _num_batches(train, source)
    steps = kwargs.pop("steps_per_epoch", None)
    name = type(train).__name__
    if length is None:
        if not steps:
            raise ScriptError(
                f"{source.script}: {source.data} is an infinite {name} (num_batches is None). {source.steps_fix}: "
                "the number of batches an epoch trains."
            )
    elif length < 1:
        raise ScriptError(f"{source.script}: {source.data} is a {name} with no batches (its length is 0).")
    elif steps and steps > length:
        raise ScriptError(
            f"{source.script}: {source.kwarg('steps_per_epoch', steps)} exceeds the {length} batches of the "
            f"{name}. Lower it, or leave it out."
        )
    return PyDatasetBatches(train, int(steps) if steps else int(length or 0), seed, length, shuffle)


def prepare_generator(train: Any, kwargs: dict, source: Source) -> GeneratorBatches:
    kwargs.pop("batch_size", None)
    steps = kwargs.pop("steps_per_epoch", None)
    if not steps:
        raise ScriptError(
            f"{source.script}: {source.data} is a generator, which has no length. {source.steps_fix}: the number "
            "of batches an epoch trains."
        )
    batches = GeneratorBatches(train, int(steps))
    try:
        batches.first()
    except StopIteration:
        raise ScriptError(f"{source.script}: {source.data} is a generator that yields nothing.") from None
    return batches


def inexact(train: Any, source: Source, seeded: bool) -> str | None:
    """Why `train` cannot resume exactly, and the fix, if so: said before a run trains."""
    if isinstance(train, GeneratorBatches):
        instead = "or arrays" if source.launched else "arrays, or a function epoch -> tf.data.Dataset"
        return (
            f"{source.data} is a Python generator, which cannot be rewound or skipped ahead: every worker that "
            "goes on with the run (each new segment, a resume) starts it again from its start, so a segmented or "
            "resumed run trains on other batches than one long fit. For exact runs, use a keras.utils.PyDataset "
            f"(batches by index), {instead}."
        )
    if not (seeded and isinstance(train, PyDatasetBatches)):
        return None
    ds = train.dataset
    for attribute, value in vars(ds).items():
        if _unseeded_generator(value):
            return (
                f"{source.data} is a {type(ds).__name__} whose attribute {attribute!r} is a NumPy Generator seeded "
                "from the operating system's entropy: a worker that resumes the run makes a new one, which draws "
                "other numbers than one long fit would, so the run will not equal it bit for bit. Seed it (e.g. "
                "np.random.default_rng(seed)), or draw from NumPy's global generator, which segtrain seeds from "
                "(seed, epoch) before each epoch's on_epoch_begin() and on_epoch_end()."
            )
    return None


def _unseeded_generator(value: Any) -> bool:
    """A NumPy Generator made without a seed: its seed sequence's entropy is the 128 bits `default_rng()` drew."""
    if not isinstance(value, np.random.Generator):
        return False
    seed_seq = getattr(value.bit_generator, "seed_seq", None)
    entropy = getattr(seed_seq, "entropy", None)
    return isinstance(entropy, int) and entropy.bit_length() > 64

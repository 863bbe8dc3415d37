"""The data order, in-process: epoch e sees the permutation `numpy.random.default_rng([seed, e])`,
batches are addressed by global step, and however the steps are cut into ranges (segments, a
resume in the middle of an epoch, a new process) the batches are the same."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from segtrain.training.data import ArrayBatches, Source, prepare
from segtrain.training.pydataset import seed_globals

SCRIPT = Path("model.py")  # only named in error messages
SEED = 3


def _ids(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs whose rows say which sample they are (x[i] = [i, 10 i]), and y = i."""
    ids = np.arange(n)
    return np.stack([ids, 10 * ids], axis=1).astype("float32"), ids.astype("int64")


def _batches(n: int = 10, seed: int = SEED, **fit_kwargs) -> ArrayBatches:
    x, y = _ids(n)
    train = prepare((x, y), fit_kwargs, seed, SCRIPT).train
    assert isinstance(train, ArrayBatches)
    return train


def _steps(batches: ArrayBatches, first: int, last: int) -> list[np.ndarray]:
    """The sample ids of steps [first, last), through `fit_input` as `fit` iterates it."""
    found = []
    for x, y in _iterate(batches.fit_input(first, last)):
        x, y = np.asarray(x), np.asarray(y)
        assert np.array_equal(x[:, 0].astype("int64"), y)  # x and y of a batch are the same samples
        found.append(y)
    return found


def _iterate(fit_input):
    if hasattr(fit_input, "as_numpy_iterator"):  # TensorFlow: a tf.data.Dataset
        return list(fit_input.as_numpy_iterator())
    return [fit_input[i] for i in range(fit_input.num_batches)]  # other backends: a keras PyDataset


def test_epoch_e_sees_default_rng_seed_e():
    batches = _batches(n=10, batch_size=4)
    assert batches.steps_per_epoch == 3  # 4 + 4 + 2
    for epoch in range(4):
        expected = np.random.default_rng([SEED, epoch]).permutation(10)
        assert np.array_equal(batches.order(epoch), expected)
        seen = [batches.batch(epoch * 3 + b)[1] for b in range(3)]
        assert [len(s) for s in seen] == [4, 4, 2]
        assert np.array_equal(np.concatenate(seen), expected)  # every sample once, in that order
    assert not np.array_equal(batches.order(0), batches.order(1)), "a new order every epoch"


def test_the_order_depends_only_on_seed_and_epoch():
    a, b = _batches(n=50, batch_size=8), _batches(n=50, batch_size=8)
    # b is asked in another order (as a resumed process would): the same batches.
    for step in [13, 0, 6, 7, 20]:
        assert np.array_equal(b.batch(step)[1], a.batch(step)[1])
    other_seed = _batches(n=50, seed=SEED + 1, batch_size=8)
    assert not np.array_equal(other_seed.order(0), a.order(0))


CUTS = {
    "one range": [(0, 12)],
    "segments of 2 epochs": [(0, 6), (6, 12)],
    "mid-epoch resume": [(0, 4), (4, 5), (5, 12)],
    "one step at a time": [(s, s + 1) for s in range(12)],
}


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_the_same_batches_however_the_steps_are_cut(cut):
    whole = [_batches(n=10, batch_size=4).batch(step)[1] for step in range(12)]  # 4 epochs of 3 steps
    pieces = []
    for first, last in CUTS[cut]:
        pieces += _steps(_batches(n=10, batch_size=4), first, last)  # a fresh object: a new process
    assert len(pieces) == len(whole)
    for step, (got, want) in enumerate(zip(pieces, whole, strict=True)):
        assert np.array_equal(got, want), f"step {step}: {got} != {want}"


def test_steps_per_epoch_smaller_than_the_data_takes_each_epochs_first_batches():
    batches = _batches(n=20, batch_size=4, steps_per_epoch=2)
    assert batches.steps_per_epoch == 2
    for epoch in range(3):
        order = np.random.default_rng([SEED, epoch]).permutation(20)
        for b in range(2):
            assert np.array_equal(batches.batch(epoch * 2 + b)[1], order[b * 4 : (b + 1) * 4])
    # Step 2 is epoch 1's first batch, not epoch 0's third.
    assert np.array_equal(batches.batch(2)[1], np.random.default_rng([SEED, 1]).permutation(20)[:4])
    assert np.array_equal(
        np.concatenate(_steps(batches, 0, 6)), np.concatenate([batches.batch(s)[1] for s in range(6)])
    )


def test_dict_inputs_and_outputs_are_cut_with_one_index():
    ids = np.arange(12)
    x = {"a": ids.astype("float32")[:, None], "b": (100 * ids).astype("float32")[:, None]}
    y = {"reg": (ids * 2).astype("float32"), "cls": ids.astype("int32")}
    batches = prepare((x, y), {"batch_size": 5}, SEED, SCRIPT).train
    order = np.random.default_rng([SEED, 1]).permutation(12)
    bx, by = batches.batch(batches.steps_per_epoch + 1)  # epoch 1, batch 1
    want = order[5:10]
    assert np.array_equal(bx["a"][:, 0], want) and np.array_equal(bx["b"][:, 0], 100 * want)
    assert np.array_equal(by["cls"], want) and np.array_equal(by["reg"], 2 * want)
    steps = list(_iterate(batches.fit_input(3, 6)))  # epoch 1 through fit_input
    assert np.array_equal(np.concatenate([np.asarray(s[1]["cls"]) for s in steps]), order)


def test_sample_weight_follows_its_samples():
    x, y = _ids(9)
    weights = np.arange(9, dtype="float32") * 10  # weight of sample i: 10 i, exactly
    data = prepare((x, y), {"batch_size": 4, "sample_weight": weights, "class_weight": None}, SEED, SCRIPT)
    assert "sample_weight" not in data.fit_kwargs  # it travels with the batches, not to fit()
    assert data.fit_kwargs == {"class_weight": None, "validation_batch_size": 4}
    for step in range(6):
        bx, by, bw = data.train.batch(step)
        assert np.array_equal(bw, by * 10) and np.array_equal(bx[:, 0], by)
    steps = list(_iterate(data.train.fit_input(0, 3)))
    assert all(len(s) == 3 for s in steps)
    assert np.array_equal(
        np.concatenate([np.asarray(s[2]) for s in steps]), np.random.default_rng([SEED, 0]).permutation(9) * 10
    )


def test_validation_data_and_defaults():
    x, y = _ids(40)
    data = prepare(((x[:30], y[:30]), [x[30:], y[30:]]), {}, SEED, SCRIPT)
    assert data.train.batch_size == 32 and data.steps_per_epoch == 1  # Keras' default batch size
    assert data.fit_kwargs == {"validation_batch_size": 32}
    vx, vy = data.validation
    assert isinstance(vx, np.ndarray) and np.array_equal(vy, y[30:])
    assert np.array_equal(np.sort(data.train.batch(0)[1]), y[:30])  # the validation rows never train


def test_shuffle_false_trains_every_epoch_in_the_given_order():
    batches = _batches(10, shuffle=False, batch_size=4)
    assert all(np.array_equal(batches.order(epoch), np.arange(10)) for epoch in (0, 1, 7))
    assert [list(b) for b in _steps(batches, 3, 6)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_validation_split_holds_out_the_last_fraction_before_any_shuffling_as_keras_does():
    x, y = _ids(10)
    weights = np.linspace(0.1, 1.0, 10).astype("float32")
    data = prepare((x, y), {"validation_split": 0.25, "sample_weight": weights}, SEED, SCRIPT)
    # Keras: split_at = floor(10 * 0.75) = 7; the last 3 samples validate, with their weights.
    _, val_y, val_w = data.validation
    assert list(val_y) == [7, 8, 9] and np.array_equal(val_w, weights[7:])
    assert data.train.num_samples == 7 and sorted(data.train.order(0)) == list(range(7))


@pytest.mark.parametrize(
    ("fit_kwargs", "message"),
    [
        ({"validation_split": 1.5}, "validation_split must be a fraction in [0, 1)"),
        ({"validation_split": 0.95}, "leaves no training samples"),
        ({"shuffle": "batch"}, "fit_kwargs['shuffle'] must be True or False"),
    ],
)
def test_fit_arguments_that_cannot_work_say_why(fit_kwargs, message):
    from segtrain.errors import ScriptError

    x, y = _ids(10)
    with pytest.raises(ScriptError, match=re.escape(message)):
        prepare((x, y), fit_kwargs, SEED, SCRIPT)


# keras.utils.PyDataset and generators (segtrain.training.pydataset): batches by index, the dataset's hooks called
# once per epoch under seeds of (seed, epoch), and replayed by a process that resumes, so that it is where one
# process would have it.


def _shuffled_class():
    import keras

    class Shuffled(keras.utils.PyDataset):
        """Batches of sample ids (x[i] = [i, 10 i], y = i) through an index array that on_epoch_end() reshuffles
        in place with NumPy's global generator, as the tutorials write it."""

        def __init__(self, n=20, batch_size=4, **kwargs):
            super().__init__(**kwargs)
            self.x, self.y = _ids(n)
            self.batch_size, self.indices = batch_size, np.arange(n)
            self.ended = self.begun = 0

        def __len__(self):
            return -(-len(self.x) // self.batch_size)

        def __getitem__(self, index):
            rows = self.indices[index * self.batch_size : (index + 1) * self.batch_size]
            return self.x[rows], self.y[rows]

        def on_epoch_begin(self):
            self.begun += 1

        def on_epoch_end(self):
            self.ended += 1
            np.random.shuffle(self.indices)

    return Shuffled


def _pydataset(**kwargs):
    return _shuffled_class()(**kwargs)


def _train(data, first_step: int, last_step: int) -> list[np.ndarray]:
    """The sample ids that a segment's `fit` calls train from `first_step`, until a signal stops them at `last_step`.

    As segment.py calls `fit` (the rest of an epoch resumed in its middle alone, then whole epochs) and as Keras runs
    it, with the hooks callback first; the calls Keras makes to the PyDataset it is given (a begin and a batch to
    build the model, a reset before the first epoch) reach the wrapper, which ignores them.
    """
    spe = data.steps_per_epoch
    end = -(-last_step // spe) * spe
    calls = [(first_step, end)]
    if first_step % spe and end > first_step - first_step % spe + spe:
        calls = [(first_step, first_step - first_step % spe + spe), (first_step - first_step % spe + spe, end)]
    seen: list[np.ndarray] = []
    for first, last in calls:
        if _fit_call(data, first, last, last_step, seen):
            break
    return seen


def _fit_call(data, first: int, last: int, stop: int, seen: list) -> bool:
    """One `fit` call over steps [first, last); True where the signal at step `stop` ended it."""
    from segtrain.training.segment import first_batch

    (hooks,) = data.callbacks()
    view, spe, step = data.train.fit_input(first, last), data.steps_per_epoch, first
    view.on_epoch_begin()
    first_batch(view)
    view.on_epoch_end()
    for epoch in range(first // spe, last // spe):
        hooks.on_epoch_begin(epoch)
        view.on_epoch_begin()
        for i in range(view.num_batches):
            seen.append(np.asarray(view[i][1]))
            step += 1
            if step == stop < last:
                return True  # stopped in the middle of the epoch: it does not end
        view.on_epoch_end()
        hooks.on_epoch_end(epoch)
    return False


def _fresh(seed: int = SEED, fit_kwargs: dict | None = None, **kwargs):
    """The data as a new process prepares it: a new PyDataset, and NumPy's global generator anywhere."""
    np.random.seed(np.random.SeedSequence().generate_state(1)[0])
    return prepare(_pydataset(**kwargs), fit_kwargs or {}, seed, SCRIPT)


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_a_pydataset_gives_the_same_batches_however_the_steps_are_cut(cut):
    """12 steps = 4 epochs of 3 batches (10 samples in batches of 4); each piece in a fresh process."""
    whole = _train(_fresh(n=10), 0, 12)
    pieces = []
    for first, last in CUTS[cut]:
        pieces += _train(_fresh(n=10), first, last)
    assert len(pieces) == len(whole) == 12
    for step, (got, want) in enumerate(zip(pieces, whole, strict=True)):
        assert np.array_equal(got, want), f"step {step}: {got} != {want}"
    for epoch in range(4):  # every epoch each sample once, and a new order each epoch
        assert sorted(np.concatenate(whole[3 * epoch : 3 * epoch + 3])) == list(range(10))
    assert not np.array_equal(np.concatenate(whole[:3]), np.concatenate(whole[3:6]))


def test_the_hooks_run_once_per_epoch_under_seeds_of_seed_and_epoch():
    data = _fresh(n=20)
    ds = data.train.dataset
    assert data.steps_per_epoch == 5 and data.train.length == 5
    _train(data, 0, 10)  # two epochs
    assert (ds.begun, ds.ended) == (2, 2)  # not Keras' own extra calls
    # epoch 1's on_epoch_end() shuffled under its seed: the same indices as shuffling by hand.
    by_hand = np.arange(20)
    for epoch in range(2):
        seed_globals(SEED, epoch, 1)
        np.random.shuffle(by_hand)
    assert np.array_equal(ds.indices, by_hand)
    resumed = _fresh(n=20)
    _train(resumed, 10, 15)  # a process that starts at epoch 2 first replays epochs 0 and 1
    assert (resumed.train.dataset.begun, resumed.train.dataset.ended) == (3, 3)


def test_shuffle_orders_the_batches_by_seed_and_epoch_and_false_keeps_their_order():
    shuffled = _fresh(n=20)
    ds = shuffled.train.dataset
    for epoch in range(3):
        shuffled.train.begin(epoch)
        order = np.random.default_rng([SEED, epoch]).permutation(5)
        assert [shuffled.train.index(b) for b in range(5)] == list(order)
    in_order = _fresh(n=20, fit_kwargs={"shuffle": False, "steps_per_epoch": 3})
    in_order.train.begin(2)
    assert [in_order.train.index(b) for b in range(3)] == [0, 1, 2] and in_order.steps_per_epoch == 3
    assert ds is not in_order.train.dataset


def test_the_datasets_workers_fetch_ahead_within_each_epoch_and_segtrain_sets_the_rest():
    import threading

    ds = _pydataset(workers=2, use_multiprocessing=False, max_queue_size=3)
    data = prepare(ds, {"batch_size": 64, "shuffle": False, "class_weight": {0: 1.0}, "verbose": 2}, SEED, SCRIPT)
    assert data.fit_kwargs == {"class_weight": {0: 1.0}}  # Keras applies class_weight to the wrapper's batches
    view = data.train.fit_input(0, data.steps_per_epoch)
    assert (view.workers, view.use_multiprocessing) == (1, False)  # Keras fetches one at a time; the workers ahead
    assert view.num_batches == 5 and data.train.fit_input(7, 10).num_batches == 3  # the rest of epoch 1
    assert prepare(_ids(4), {}, SEED, SCRIPT).callbacks() == []  # arrays need no hooks

    fetched = []
    original = type(ds).__getitem__

    def fetch(self, index):
        fetched.append((index, threading.current_thread() is threading.main_thread()))
        return original(self, index)

    type(ds).__getitem__ = fetch
    try:
        view[0]  # before the epoch begins (`fit` building the model): here, and nothing ahead
        assert fetched == [(0, True)] and data.train.workers.pending == {}
        data.train.begin(0)
        view[0]
        assert 1 <= len(data.train.workers.pending) <= 3  # max_queue_size ahead, at most
        assert [b for b in range(5) if np.array_equal(view[b][1], _ids(20)[1][4 * b : 4 * b + 4])] == list(range(5))
        data.train.end(0)  # waits for what is under way before on_epoch_end() reshuffles
        assert data.train.workers.pending == {}
        assert {index for index, main in fetched[1:]} == set(range(5)) and not any(main for _, main in fetched[1:])
    finally:
        type(ds).__getitem__ = original
        data.train.workers.pool.terminate()


def test_an_infinite_pydataset_is_read_by_global_step_and_needs_steps_per_epoch():
    import keras

    class Endless(keras.utils.PyDataset):
        num_batches = None

        def __getitem__(self, index):
            return np.full((2, 1), index, "float32"), np.zeros((2, 1), "float32")

    message = _refused(Endless(), {})
    assert "the data from `load_data()` is an infinite Endless" in message
    assert "Set fit_kwargs = {'steps_per_epoch': N}: the number of batches an epoch trains." in message
    data = prepare(Endless(), {"steps_per_epoch": 3}, SEED, SCRIPT)
    data.train.begin(2)
    assert [int(data.train.fit_input(6, 9)[i][0][0, 0]) for i in range(3)] == [6, 7, 8]


def _refused(raw, fit_kwargs: dict, **kwargs) -> str:
    from segtrain.errors import ScriptError

    with pytest.raises(ScriptError) as info:
        prepare(raw, fit_kwargs, SEED, SCRIPT, **kwargs)
    return " ".join(str(info.value).split())


def test_what_a_pydataset_cannot_do_is_refused_with_the_fix():
    from segtrain.training.data import Fold

    assert "steps_per_epoch']=9 exceeds the 5 batches of the Shuffled" in _refused(_pydataset(), {"steps_per_epoch": 9})
    assert "is a Shuffled with no batches" in _refused(_pydataset(n=0), {})
    assert "for a keras.utils.PyDataset (Shuffled), pass validation_data" in _refused(
        _pydataset(), {"validation_split": 0.2}
    )
    many_hosts = _refused(_pydataset(), {}, share=(0, 2))
    assert "a keras.utils.PyDataset (Shuffled) is not split across hosts. Return the arrays (x, y)" in many_hosts
    assert "for a keras.utils.PyDataset (Shuffled), return (train, val) for the fold" in _refused(
        _pydataset(), {}, fold=Fold(0, 2, 0)
    )


def test_a_generator_needs_steps_per_epoch_and_steps_through_it_once():
    from segtrain.training.segment import first_batch

    def numbers(n=100):
        yield from ((np.full((2, 1), i, "float32"), np.zeros((2, 1), "float32")) for i in range(n))

    assert "is a generator, which has no length. Set fit_kwargs = {'steps_per_epoch': N}" in _refused(numbers(), {})
    assert "is a generator that yields nothing" in _refused(numbers(0), {"steps_per_epoch": 2})
    data = prepare(numbers(), {"steps_per_epoch": 2, "batch_size": 8}, SEED, SCRIPT)
    assert data.fit_kwargs == {} and data.callbacks() == []
    for _ in range(2):  # the model's build and the warm-up read step 0 without using up the generator
        assert int(first_batch(data.train.fit_input(0, 1))[0][0, 0]) == 0
    assert [int(x[0, 0]) for x, _ in data.train.fit_input(0, 4)] == [0, 1, 2, 3]
    assert [int(x[0, 0]) for x, _ in data.train.fit_input(4, 6)] == [4, 5]
    reason = data.inexact(Source(SCRIPT), seeded=False)
    assert len(reason) == 1 and "is a Python generator, which cannot be rewound or skipped ahead" in reason[0]


def test_a_pydataset_with_a_generator_of_its_own_is_named_inexact_unless_seeded():
    seeded, unseeded = _pydataset(), _pydataset()
    seeded.rng, unseeded.rng = np.random.default_rng(7), np.random.default_rng()
    assert prepare(seeded, {}, SEED, SCRIPT).inexact(Source(SCRIPT), seeded=True) == []
    (reason,) = prepare(unseeded, {}, SEED, SCRIPT).inexact(Source(SCRIPT), seeded=True)
    assert "is a Shuffled whose attribute 'rng' is a NumPy Generator seeded from the operating system" in reason
    assert prepare(unseeded, {}, SEED, SCRIPT).inexact(Source(SCRIPT), seeded=False) == []  # unseeded: never exact


def test_under_segtrain_run_messages_name_the_scripts_fit_call_not_load_data():
    """A launched script defines no load_data(): its data is what its own model.fit(...) call was given."""
    launched = {"launched": True}
    messages = [
        _refused(_pydataset(), {"steps_per_epoch": 9}, **launched),
        _refused("text", {}, **launched),
        _refused(["a", "b", "c"], {}, **launched),
        _refused((np.zeros((3, 2)), np.zeros(4)), {}, **launched),
        _refused((np.zeros((3, 2)), np.zeros(3)), {"shuffle": "batch"}, **launched),
        _refused(_pydataset(), {"validation_split": 0.1}, **launched),
    ]
    for message in messages:
        assert "load_data" not in message and "fit_kwargs" not in message, message
    assert "model.fit(steps_per_epoch=9) exceeds the 5 batches" in messages[0]
    assert messages[1] == (
        "model.py: model.fit(...) in model.py must be given arrays (x and y), a tf.data.Dataset, "
        "a keras.utils.PyDataset or a generator. Received: str"
    )
    assert "model.fit(...) in model.py was given inputs and targets of different lengths" in messages[3]
    assert "model.fit(shuffle=...) must be True or False" in messages[4]
    assert Source(SCRIPT, True).data == "the data passed to model.fit(...) in model.py"

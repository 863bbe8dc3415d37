"""The data order, in-process: epoch e sees the permutation `numpy.random.default_rng([seed, e])`,
batches are addressed by global step, and however the steps are cut into ranges (segments, a
resume in the middle of an epoch, a new process) the batches are the same."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from segtrain.training.data import ArrayBatches, prepare

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

"""Seeding TensorFlow again in a worker whose model has warmed up: the seeds as `set_seed` sets them, the
compiled kernels kept (tf.random.set_seed alone drops them, and a warmed-up model then instantiates its train
function again at its first step: 0.10 s per boundary on bench/start.py's mission shape).

A stateful random kernel shows which happened: it restarts from its seed where the caches were cleared and
goes on where they were kept.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")


def _draws() -> tuple:
    """What a seed decides: Python, NumPy, Keras' global generator, and the op seeds of new tf.data ops."""
    import keras

    shuffled = [int(v) for v in tf.data.Dataset.range(10).shuffle(10)]
    return random.random(), float(np.random.random()), keras.random.uniform((2,)).numpy().tolist(), shuffled


def test_seeding_again_keeping_kernels_sets_every_seed_as_seeding_does_and_keeps_the_kernels():
    from segtrain.backends.tensorflow import TensorFlow

    backend = TensorFlow()
    backend.seed(5)
    first = tf.random.uniform([2], seed=1).numpy().tolist()  # a stateful kernel, cached in the eager context
    seeded = _draws()

    backend.seed(5)
    assert tf.random.uniform([2], seed=1).numpy().tolist() == first  # the caches were cleared: it restarts
    assert _draws() == seeded

    backend.seed(5, keep_compiled=True)
    assert tf.random.uniform([2], seed=1).numpy().tolist() != first  # kept: it goes on where it was
    assert _draws() == seeded  # and every seed is as seeding sets it

    backend.seed(5)  # the context's own setter is back: it clears again
    assert tf.random.uniform([2], seed=1).numpy().tolist() == first

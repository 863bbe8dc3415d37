"""`model_state.FreshState`: a new model's state before its first step, kept across a warm-up step that traces it.

The spare of a sweep's next trial (or cv's next fold) builds the run's model and trains it one step to trace
it; the state taken before that step is set back before the run trains. The end-to-end check is bitwise
(tests/test_cv.py, tests/test_sweep.py); these check the parts in-process.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from segtrain.state import model_state

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _model(extra=None):
    import keras

    keras.utils.set_random_seed(3)
    layers = [keras.Input((4,)), keras.layers.GaussianNoise(0.1), keras.layers.Dense(8), keras.layers.Dropout(0.3)]
    model = keras.Sequential([*layers, *([extra] if extra is not None else []), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def _batch():
    return np.ones((8, 4), "float32"), np.zeros((8, 1), "float32"), None


def _variables(model) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in [*model.variables, *model.optimizer.variables, *model.metrics_variables]]


def test_put_back_sets_every_variable_and_generator_back_to_before_the_step():
    model = _model()
    model_state.create_fit_variables(model, _batch)
    before = model_state.FreshState.take(model)
    values, python, numpy = _variables(model), random.getstate(), np.random.get_state()
    x, y, _ = _batch()
    model.fit(x, y, epochs=1, verbose=0)
    random.random(), np.random.random()  # a step, or the script, may draw from them
    assert int(model.optimizer.iterations.numpy()) == 1
    assert any(not np.array_equal(a, b) for a, b in zip(values, _variables(model), strict=True))
    assert before.intact(model)
    before.put_back(model)
    for a, b in zip(values, _variables(model), strict=True):
        assert np.array_equal(a, b), "weights, seed states, optimizer and metric variables as before the step"
    assert random.getstate() == python
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy, strict=True))


def test_a_step_that_makes_keras_global_generator_leaves_the_state_not_intact():
    """A layer that draws without a seed in its call makes Keras' global SeedGenerator in the traced step: the
    trace holds it, and nothing can set it back, so the warm model is not used (the run builds its own)."""
    import keras

    class Unseeded(keras.layers.Layer):
        def call(self, x, training=False):
            return x + keras.random.normal(keras.ops.shape(x)) * 0.0 if training else x

    keras.utils.set_random_seed(3)  # no global generator yet
    model = _model(Unseeded())
    model_state.create_fit_variables(model, _batch)
    before = model_state.FreshState.take(model)
    x, y, _ = _batch()
    model.fit(x, y, epochs=1, verbose=0)
    assert not before.intact(model)

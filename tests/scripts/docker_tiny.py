"""A tiny regression for tests/test_container.py: trains in milliseconds, paced so a test can stop it mid-run.

Each epoch ends with a short sleep (see `Pace`), so that a run of a few epochs
lasts long enough for the test to stop or kill its container mid-way. The test
of the compose file mounts it as the example's `spirals.py`, so that the compose
file's own command runs it.
"""

import time

import keras
import numpy as np

fit_kwargs = {"batch_size": 16}
PACE_SECONDS = 0.25


class Pace(keras.callbacks.Callback):
    """Sleep after every epoch; stateless, so it needs no get_state/set_state."""

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(PACE_SECONDS)


def load_data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]], dtype="float32")).astype("float32")
    return (x[:48], y[:48]), (x[48:], y[48:])


def build_model():
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def callbacks():
    return [Pace()]

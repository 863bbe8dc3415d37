"""A tiny model whose epochs take a fixed extra half second, so a test can catch its run mid-way.

Used by tests/test_report.py to look at a run with `status` and `report` while it
trains and after it is killed with SIGKILL.
"""

import time

import keras
import numpy as np

EPOCH_SLEEP = 0.5
fit_kwargs = {"batch_size": 32}


def load_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32"))[:, None]


def build_model():
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return model


class Slow(keras.callbacks.Callback):
    """Stretches every epoch: the time a real epoch takes, without the CPU it would burn."""

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(EPOCH_SLEEP)


def callbacks():
    return [Slow()]

"""A job that leaks inside its process: each epoch is 0.25 s slower and holds 16 MB more than the last.

Module state lives as long as the process, like the leaks segtrain exists to
cut: a fresh worker starts clean.
"""

import time

import keras
import numpy as np

fit_kwargs = {"batch_size": 16}
HELD = []


def load_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def build_model():
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _leak(epoch, logs):
    HELD.append(b"\x01" * (16 << 20))
    time.sleep(0.25 * len(HELD))


def callbacks():
    return [keras.callbacks.LambdaCallback(on_epoch_end=_leak)]

"""A small MLP for runs on two processes (tests/test_hosts.py): shuffled batches, a validation split, Dropout.

Every batch (8 samples) and the validation batches split evenly between two processes. With
SLOW_EPOCHS=1 each epoch takes an extra 0.4 s, so that a test can catch the run mid-way.
"""

import os
import time

import keras
import numpy as np

fit_kwargs = {"batch_size": 8, "validation_split": 0.25}


def load_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    return x, (np.tanh(x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32")))[:, None]


def build_model():
    model = keras.Sequential(
        [
            keras.Input(shape=(4,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    return model


class Slow(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if os.environ.get("SLOW_EPOCHS"):
            time.sleep(0.05)


def callbacks():
    return [Slow()]

"""EarlyStopping ends the run well before its epochs: with `min_delta` larger than any gain, only the first
epoch improves, so `patience=2` stops it after epoch 3, and again 3 epochs into a `resume --continue`.

CSVLogger (append=False, as people write it) logs to $CALLBACK_OUT/log.csv where the test sets it.
"""

import os

import keras
import numpy as np

fit_kwargs = {"batch_size": 16}


def load_data():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = (x[:, :1] * 0.5 + rng.normal(size=(64, 1)) * 0.1).astype("float32")
    return x, y


def build_model():
    model = keras.Sequential(
        [
            keras.Input(shape=(8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def callbacks():
    found = [keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=2)]
    if os.environ.get("CALLBACK_OUT"):
        found.append(keras.callbacks.CSVLogger(os.path.join(os.environ["CALLBACK_OUT"], "log.csv")))
    return found

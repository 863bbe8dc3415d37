"""A tiny model whose batches take ~10 ms (a sleeping callback), so that signals land mid-epoch."""

import time

import keras
import numpy as np

fit_kwargs = {"batch_size": 8}


def load_data():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(480, 6)).astype("float32")
    y = (x @ rng.normal(size=(6, 1))).astype("float32")
    return (x[:400], y[:400]), (x[400:], y[400:])


def build_model():
    model = keras.Sequential(
        [
            keras.Input(shape=(6,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def callbacks():
    return [keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: time.sleep(0.01))]

"""A tiny model whose batches take ~0.3 s (a sleeping callback): a second signal arrives while the first waits."""

import time

import numpy as np
import keras

fit_kwargs = {"batch_size": 8}


def load_data():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(56, 6)).astype("float32")
    y = (x @ rng.normal(size=(6, 1))).astype("float32")
    return (x[:40], y[:40]), (x[40:], y[40:])


def build_model():
    model = keras.Sequential([
        keras.Input(shape=(6,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def callbacks():
    return [keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: time.sleep(0.3))]

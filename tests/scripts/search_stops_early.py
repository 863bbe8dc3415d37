"""A sweep's or cross-validation's script whose EarlyStopping ends every trial or fold after epoch 2:
`min_delta` is larger than any gain, so only the first epoch improves, and `patience=1`."""

import keras
import numpy as np

fit_kwargs = {"batch_size": 32}


def load_data(params):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 4)).astype("float32")
    y = (x.sum(1, keepdims=True) > 0).astype("float32")
    return x, y


def build_model(params):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(params.get("units", 8), activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(params.get("lr", 0.01)), loss="mse")
    return model


def callbacks():
    return [keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=1)]


def search_space(trial):
    return {"units": trial.suggest_int("units", 4, 16), "lr": trial.suggest_float("lr", 0.005, 0.05, log=True)}

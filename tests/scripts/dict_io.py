"""Functional model with dict inputs and outputs, BatchNorm, Dropout and a learning-rate schedule."""

import keras
import numpy as np

fit_kwargs = {"batch_size": 16}


def load_data():
    rng = np.random.default_rng(0)
    n = 120
    x = {"a": rng.normal(size=(n, 4)).astype("float32"), "b": rng.normal(size=(n, 3)).astype("float32")}
    y = {"reg": (x["a"][:, :1] * 2 - x["b"][:, 1:2]).astype("float32"), "cls": (x["a"][:, 0] > 0).astype("int32")}
    return x, y


def build_model():
    a = keras.Input(shape=(4,), name="a")
    b = keras.Input(shape=(3,), name="b")
    h = keras.layers.Concatenate()([a, b])
    h = keras.layers.Dense(16, activation="relu")(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Dropout(0.3)(h)
    reg = keras.layers.Dense(1, name="reg")(h)
    cls = keras.layers.Dense(2, activation="softmax", name="cls")(h)
    model = keras.Model({"a": a, "b": b}, {"reg": reg, "cls": cls})
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=5, decay_rate=0.9)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule), loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"}
    )
    return model

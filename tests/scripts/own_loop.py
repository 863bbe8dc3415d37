"""A script that trains each epoch with its own loop (GradientTape) instead of fit."""

import keras
import numpy as np
import tensorflow as tf

fit_kwargs = {"batch_size": 10}


def load_data():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 3)).astype("float32")
    return x, (x @ np.array([[1.0], [-2.0], [0.5]], "float32"))


def build_model():
    model = keras.Sequential(
        [
            keras.Input(shape=(3,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.25),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def train_epoch(model, data, epoch):
    x, y = data
    order = np.random.default_rng([7, epoch]).permutation(len(x))
    losses = []
    for start in range(0, len(x), 10):
        idx = order[start : start + 10]
        with tf.GradientTape() as tape:
            loss = keras.ops.mean(keras.ops.square(model(x[idx], training=True) - y[idx]))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply(grads, model.trainable_variables)
        losses.append(float(loss))
    return {"loss": float(np.mean(losses))}

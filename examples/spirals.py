"""A small classifier on three interleaved spirals: the bundled segtrain example.

    segtrain fit examples/spirals.py --epochs 12 --segment 4 --seed 0

Synthetic data, so it runs anywhere in well under a minute on a laptop CPU.
"""

import numpy as np
import keras

fit_kwargs = {"batch_size": 64}


def load_data():
    rng = np.random.default_rng(1234)  # the data itself is fixed; segtrain seeds the order
    n, classes = 24000, 3
    t = rng.uniform(0.25, 1.0, size=n)
    label = rng.integers(0, classes, size=n)
    angle = 4.0 * np.pi * t + label * (2.0 * np.pi / classes)
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    x += rng.normal(scale=0.03, size=x.shape)
    x, label = x.astype("float32"), label.astype("int32")
    split = int(0.8 * n)
    return (x[:split], label[:split]), (x[split:], label[split:])


def build_model():
    model = keras.Sequential([
        keras.Input(shape=(2,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.1),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    schedule = keras.optimizers.schedules.ExponentialDecay(3e-3, decay_steps=200, decay_rate=0.9)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def callbacks():
    return [keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)]

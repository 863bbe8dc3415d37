"""Data and model shared by the benchmark workloads (imported by them, not a workload itself).

segtrain puts a script's folder first on `sys.path`, and so does bench/naive.py,
so `import bench_common` works from every workload in this folder.
"""

import os

import keras
import numpy as np

QUICK = os.environ.get("BENCH_QUICK") == "1"


def synthetic(samples: int, features: int = 64, classes: int = 10, seed: int = 7):
    """A fixed classification task: labels from a random linear teacher."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, features)).astype("float32")
    teacher = rng.normal(size=(features, classes)).astype("float32")
    y = np.argmax(x @ teacher, axis=1).astype("int32")
    return x, y


def mlp(features: int, width: int, classes: int = 10, lr: float = 1e-3) -> keras.Model:
    model = keras.Sequential([
        keras.Input(shape=(features,)),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(classes, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model

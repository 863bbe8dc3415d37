"""The GPU check's model (bench/gpu_check.py): an MLP whose size comes from `--param`s, on synthetic data.

    segtrain fit bench/gpu/workloads/mlp.py --epochs 8 --segment 2 --seed 0 --param width=2048 --param depth=2

Params (all optional): features, width, depth (hidden layers), samples, dropout (1: a Dropout(0.1) after the
first layer, the default; 0: none); batches of 128. A BatchNormalization and the Dropout make exactness depend
on more than the weights (moving statistics, the dropout masks' RNG).
features=4096, width=4096, depth=3 is a 50.4M-parameter model (bench/gpu_check.py's boundary check).

With GPU_CHECK_DETERMINISTIC=1 in the environment, PyTorch runs its deterministic algorithms
(`torch.use_deterministic_algorithms(True, warn_only=True)`; cuBLAS also needs CUBLAS_WORKSPACE_CONFIG=:4096:8,
which the check sets). JAX's setting is an environment variable alone (XLA_FLAGS), set by the check.
"""

import os

import keras
import numpy as np

if os.environ.get("GPU_CHECK_DETERMINISTIC") == "1" and keras.backend.backend() == "torch":
    import torch

    # warn_only: an op with no deterministic implementation warns (in the worker's log, which the check reads
    # and names) instead of failing the run; every op that has one uses it, as with plain True.
    torch.use_deterministic_algorithms(True, warn_only=True)

DEFAULTS = {"features": 32, "width": 64, "depth": 2, "samples": 2048, "dropout": 1}
CLASSES = 10

fit_kwargs = {"batch_size": 128}


def _size(params):
    return {k: int(params.get(k, v)) for k, v in DEFAULTS.items()}


def load_data(params):
    size = _size(params)
    rng = np.random.default_rng(7)
    n, f = size["samples"], size["features"]
    x = rng.normal(size=(n, f)).astype("float32")
    teacher = rng.normal(size=(f, CLASSES)).astype("float32")
    y = np.argmax(x @ teacher, axis=1).astype("int32")
    split = n - n // 8
    return (x[:split], y[:split]), (x[split:], y[split:])


def build_model(params):
    size = _size(params)
    layers = [keras.Input(shape=(size["features"],))]
    for i in range(size["depth"]):
        layers.append(keras.layers.Dense(size["width"], activation="relu"))
        if i == 0:
            layers.append(keras.layers.BatchNormalization())
            if size["dropout"]:
                layers.append(keras.layers.Dropout(0.1))
    layers.append(keras.layers.Dense(CLASSES, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model

"""slow.py with batches of ~0.3 s (a sleeping callback): a second signal arrives while the first waits."""

import time

import keras
import numpy as np
from slow import build_model, fit_kwargs  # noqa: F401 - the same model and batch size


def load_data():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(56, 6)).astype("float32")
    y = (x @ rng.normal(size=(6, 1))).astype("float32")
    return (x[:40], y[:40]), (x[40:], y[40:])


def callbacks():
    return [keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: time.sleep(0.3))]

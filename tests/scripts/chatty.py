"""A tiny model that prints: at import, after each epoch; DIE_AT_EPOCH kills its worker there (SIGKILL)."""

import os
import signal

import keras
import numpy as np

print("chatty: script imported", flush=True)


def load_data():
    x = np.linspace(-1, 1, 64, dtype="float32").reshape(32, 2)
    return x, x[:, :1] * 2


def build_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def _epoch_end(epoch, logs):
    print(f"chatty: epoch {epoch + 1} done", flush=True)
    if str(epoch + 1) == os.environ.get("DIE_AT_EPOCH"):
        print("chatty: about to die", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


def callbacks():
    return [keras.callbacks.LambdaCallback(on_epoch_end=_epoch_end)]

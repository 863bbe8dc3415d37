"""A model that overfits quickly, with every stateful built-in callback and a user callback.

Files the callbacks write go to $CALLBACK_OUT (set by the test).
"""

import json
import os

import keras
import numpy as np

OUT = os.environ.get("CALLBACK_OUT", ".")
fit_kwargs = {"batch_size": 16}


def load_data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 8)).astype("float32")
    y = rng.normal(size=(80, 1)).astype("float32")  # noise: validation loss soon stops improving
    return (x[:64], y[:64]), (x[64:], y[64:])


def build_model():
    model = keras.Sequential(
        [
            keras.Input(shape=(8,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


class EpochCounter(keras.callbacks.Callback):
    """A user callback with state: how many epochs it has seen, across segments."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    def on_epoch_end(self, epoch, logs=None):
        self.seen += 1
        with open(os.path.join(OUT, "counter.jsonl"), "a") as f:
            f.write(json.dumps({"epoch": epoch, "seen": self.seen}) + "\n")

    def get_state(self):
        return {"seen": self.seen}

    def set_state(self, state):
        self.seen = state["seen"]


def callbacks():
    return [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=4, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=2, factor=0.5),
        keras.callbacks.ModelCheckpoint(
            os.path.join(OUT, "best-{epoch:02d}.weights.h5"),
            monitor="val_loss",
            save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.CSVLogger(os.path.join(OUT, "log.csv")),
        keras.callbacks.TensorBoard(log_dir=os.path.join(OUT, "tb"), update_freq=1),
        keras.callbacks.TerminateOnNaN(),
        EpochCounter(),
    ]

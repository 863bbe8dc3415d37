"""An ordinary Keras training script, as people write them: `segtrain run` runs it unmodified.

Arrays, `validation_split`, a callback of its own, `evaluate` and `save` after `fit`. Its arguments:
--epochs N, --units N.
"""

import argparse
import json
import os

import keras
import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=6)
parser.add_argument("--units", type=int, default=16)
args = parser.parse_args()

print("script: loading data")
rng = np.random.default_rng(7)
x = rng.normal(size=(120, 6)).astype("float32")
y = (x[:, :1] * 2.0 - x[:, 1:2] + 0.1 * rng.normal(size=(120, 1))).astype("float32")


class Seen(keras.callbacks.Callback):
    """A callback with state that lasts across segments."""

    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1

    def get_state(self):
        return {"epochs": self.epochs}

    def set_state(self, state):
        self.epochs = state["epochs"]


model = keras.Sequential(
    [
        keras.Input(shape=(6,)),
        keras.layers.Dense(args.units, activation="relu"),
        keras.layers.Dropout(0.1),
        keras.layers.Dense(1),
    ]
)
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
seen = Seen()
history = model.fit(x, y, batch_size=16, epochs=args.epochs, validation_split=0.25, callbacks=[seen], verbose=2)

loss, mae = model.evaluate(x, y, verbose=0)
after = {"epochs": history.epoch, "loss": history.history["loss"], "seen": seen.epochs}
print("script: after fit " + json.dumps(after))
print(f"script: evaluate loss={loss:.6f}")
out = os.environ.get("PLAIN_OUT")
if out:
    model.save(os.path.join(out, "final.keras"))

"""An ordinary Keras script whose data is a keras.utils.PyDataset that reshuffles in on_epoch_end() with NumPy's
global generator: `segtrain run` runs it unmodified. Its arguments: --epochs N, --workers N, and --generator (a
generator instead, without steps_per_epoch, which segtrain refuses)."""

import argparse
import json
import math

import keras
import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=6)
parser.add_argument("--workers", type=int, default=1)
parser.add_argument("--generator", action="store_true")
args = parser.parse_args()


class Shuffled(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size
        self.indices = np.arange(len(x))
        self.ended = 0

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        rows = self.indices[index * self.batch_size : (index + 1) * self.batch_size]
        return self.x[rows], self.y[rows]

    def on_epoch_end(self):
        self.ended += 1
        np.random.shuffle(self.indices)


rng = np.random.default_rng(0)
x = rng.normal(size=(96, 4)).astype("float32")
y = (x @ rng.normal(size=(4, 1))).astype("float32")
data = Shuffled(x, y, batch_size=16, workers=args.workers)

model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
history = model.fit(iter(data) if args.generator else data, epochs=args.epochs, verbose=2)
after = {"epochs": history.epoch, "loss": history.history["loss"], "ended": data.ended}
print("script: after fit " + json.dumps(after))

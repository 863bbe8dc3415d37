"""A keras.utils.PyDataset as the tutorials write it: on_epoch_end() reshuffles an index array in place with
NumPy's global generator, so each epoch's batches follow from every shuffle before it.

Params: workers=N (Keras' threads, default 1), sleep=SECONDS (per batch, so that a signal lands mid-epoch).
"""

import math
import time

import keras
import numpy as np


class Shuffled(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size, sleep=0.0, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.sleep = x, y, batch_size, sleep
        self.indices = np.arange(len(x))

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        time.sleep(self.sleep)
        rows = self.indices[index * self.batch_size : (index + 1) * self.batch_size]
        return self.x[rows], self.y[rows]

    def on_epoch_end(self):
        np.random.shuffle(self.indices)


def load_data(params):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 1))).astype("float32")
    workers = int(params.get("workers", 1))
    return Shuffled(x, y, batch_size=16, sleep=float(params.get("sleep", 0.0)), workers=workers)


def build_model():
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model

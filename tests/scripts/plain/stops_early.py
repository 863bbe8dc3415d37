"""An unmodified script whose EarlyStopping ends training at epoch 3 of 20 (see tests/scripts/stops_early.py),
with a CSVLogger beside it, as people write them."""

import json
import os
import sys

import keras
import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(5)
x = rng.normal(size=(64, 8)).astype("float32")
y = (x[:, :1] * 0.5 + rng.normal(size=(64, 1)) * 0.1).astype("float32")

model = keras.Sequential([keras.Input(shape=(8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
history = model.fit(
    x,
    y,
    batch_size=16,
    epochs=20,
    callbacks=[
        keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=2),
        keras.callbacks.CSVLogger(os.path.join(out, "log.csv")),
    ],
    verbose=0,
)
print("script: after fit " + json.dumps({"epochs": len(history.history["loss"])}))

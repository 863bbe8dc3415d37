"""The bundled example written as a plain Keras script: no build_model(), no load_data(), just fit().

    python examples/spirals_plain.py                                   # plain Keras, one process
    segtrain run examples/spirals_plain.py --segment 4 --seed 0        # the same, in segments of 4

Under `segtrain run`, every worker runs this file from the top; `model.fit(...)` trains the worker's
segment, and in the last one it returns the whole run's history and the script goes on.
"""

import argparse

import keras
import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=12)
args = parser.parse_args()

rng = np.random.default_rng(1234)
n, classes = 24000, 3
t = rng.uniform(0.25, 1.0, size=n)
label = rng.integers(0, classes, size=n)
angle = 4.0 * np.pi * t + label * (2.0 * np.pi / classes)
x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) + rng.normal(scale=0.03, size=(n, 2))
x, label = x.astype("float32"), label.astype("int32")

model = keras.Sequential([
    keras.Input(shape=(2,)),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.BatchNormalization(),
    keras.layers.Dropout(0.1),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(3, activation="softmax"),
])
schedule = keras.optimizers.schedules.ExponentialDecay(3e-3, decay_steps=200, decay_rate=0.9)
model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

history = model.fit(
    x, label,
    batch_size=64,
    epochs=args.epochs,
    validation_split=0.2,
    callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)],
)
loss, accuracy = model.evaluate(x[-4800:], label[-4800:], verbose=0)
print(f"trained {len(history.epoch)} epochs; held-out accuracy {accuracy:.3f}")

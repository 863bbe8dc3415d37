"""Transfer learning, then fine-tuning, as keras.io's "Transfer learning & fine-tuning" guide writes it.

A base model (here a small one, "pretrained" by its seed, with BatchNormalization) is frozen and run in
inference mode under a new head; the head trains (`fit` #1); then the base is unfrozen, the model
recompiled with a low learning rate, and trained end to end (`fit` #2). Synthetic images as tf.data
datasets stand in for the download. `segtrain run` runs it unmodified: each fit call is a stage.
Its arguments: --head-epochs N, --tune-epochs N, and --go-on: the second call counts its epochs on from the
first's, as tensorflow.org's "Transfer learning and fine-tuning" tutorial writes it
(`fit(epochs=head + tune, initial_epoch=len(history.epoch))`).
"""

import argparse
import json

import keras
import numpy as np
import tensorflow as tf

parser = argparse.ArgumentParser()
parser.add_argument("--head-epochs", type=int, default=4)
parser.add_argument("--tune-epochs", type=int, default=4)
parser.add_argument("--go-on", action="store_true")
args = parser.parse_args()

rng = np.random.default_rng(3)
images = rng.normal(size=(160, 12, 12, 3)).astype("float32")
labels = (images[:, :6, :6, 0].mean(axis=(1, 2)) > 0).astype("float32")
train_ds = tf.data.Dataset.from_tensor_slices((images[:128], labels[:128])).batch(32)
validation_ds = tf.data.Dataset.from_tensor_slices((images[128:], labels[128:])).batch(32)

base_model = keras.Sequential(
    [
        keras.Input(shape=(12, 12, 3)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Conv2D(8, 3, activation="relu"),
    ],
    name="base",
)
base_model.trainable = False

inputs = keras.Input(shape=(12, 12, 3))
x = base_model(inputs, training=False)
x = keras.layers.GlobalAveragePooling2D()(x)
x = keras.layers.Dropout(0.2)(x)
outputs = keras.layers.Dense(1)(x)
model = keras.Model(inputs, outputs)

model.compile(
    optimizer=keras.optimizers.Adam(),
    loss=keras.losses.BinaryCrossentropy(from_logits=True),
    metrics=[keras.metrics.BinaryAccuracy()],
)
print("Fitting the top layer of the model")
head = model.fit(train_ds, epochs=args.head_epochs, validation_data=validation_ds, verbose=2)
print("script: head " + json.dumps({"epochs": head.epoch, "loss": head.history["loss"]}))

base_model.trainable = True
model.compile(
    optimizer=keras.optimizers.Adam(1e-5),
    loss=keras.losses.BinaryCrossentropy(from_logits=True),
    metrics=[keras.metrics.BinaryAccuracy()],
)
print("Fitting the end-to-end model")
if args.go_on:
    seen = []
    tuned = model.fit(
        train_ds,
        epochs=args.head_epochs + args.tune_epochs,
        initial_epoch=len(head.epoch),
        validation_data=validation_ds,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))],
        verbose=2,
    )
    print("script: callback saw " + json.dumps(seen))
else:
    tuned = model.fit(train_ds, epochs=args.tune_epochs, validation_data=validation_ds, verbose=2)
print("script: tuned " + json.dumps({"epochs": tuned.epoch, "loss": tuned.history["loss"]}))

loss, accuracy = model.evaluate(validation_ds, verbose=0)
print(f"script: evaluate loss={loss:.6f} accuracy={accuracy:.4f}")

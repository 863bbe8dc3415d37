"""A script that builds and compiles a model but never calls fit: `segtrain run` says what to do."""

import keras

model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
print("script: no fit here")

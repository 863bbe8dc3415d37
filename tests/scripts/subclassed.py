"""Subclassed model with a custom layer that owns a SeedGenerator (registered serializable)."""

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="segtrain_tests")
class NoisyDense(keras.layers.Layer):
    def __init__(self, units, stddev=0.1, **kwargs):
        super().__init__(**kwargs)
        self.units, self.stddev = units, stddev
        self.seed_generator = keras.random.SeedGenerator(None)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform")

    def call(self, x, training=False):
        y = x @ self.kernel
        if training:
            y = y + keras.random.normal(keras.ops.shape(y), stddev=self.stddev, seed=self.seed_generator)
        return y

    def get_config(self):
        return {**super().get_config(), "units": self.units, "stddev": self.stddev}


@keras.saving.register_keras_serializable(package="segtrain_tests")
class Net(keras.Model):
    def __init__(self, hidden=16, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.noisy = NoisyDense(hidden)
        self.drop = keras.layers.Dropout(0.2)
        self.out = keras.layers.Dense(1)

    def call(self, x, training=False):
        return self.out(self.drop(keras.ops.relu(self.noisy(x, training=training)), training=training))

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden}


fit_kwargs = {"batch_size": 32}


def load_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 5)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) + 0.1 * rng.normal(size=(100, 1))).astype("float32")
    return (x[:80], y[:80]), (x[80:], y[80:])


def build_model():
    model = Net()
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="mse", metrics=["mae"])
    return model

"""Workload 2a, leak: a per-epoch callback that builds and trains a helper model (a linear probe).

Every epoch the callback fits a new linear classifier on the first layer's
features of a fixed probe set. Each new model traces a new train step, and each
traced step registers a `CustomGradient-N` entry in TensorFlow's global gradient
registry whose closure keeps the whole graph alive: ~3.5 MB of RSS per epoch
that `keras.backend.clear_session()` does not free. Only a new process does.
"""

import bench_common as common
import keras
import numpy as np

FEATURES = 64
SAMPLES = 256 if common.QUICK else 4096
WIDTH = 32 if common.QUICK else 256
PROBE_SAMPLES = 64 if common.QUICK else 512
fit_kwargs = {"batch_size": 128}

_x_probe, _y_probe = common.synthetic(PROBE_SAMPLES, FEATURES, seed=11)


def load_data():
    return common.synthetic(SAMPLES, FEATURES)


def build_model():
    return common.mlp(FEATURES, WIDTH)


class LinearProbe(keras.callbacks.Callback):
    """How linearly separable the first layer's features are, measured by training a new model."""

    def on_epoch_end(self, epoch, logs=None):
        features = np.asarray(self.model.layers[0](_x_probe))
        probe = keras.Sequential([
            keras.Input(shape=features.shape[1:]),
            keras.layers.Dense(10, activation="softmax",
                               kernel_initializer=keras.initializers.GlorotUniform(seed=epoch)),
        ])
        probe.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        history = probe.fit(features, _y_probe, epochs=2, batch_size=64, shuffle=False, verbose=0)
        if logs is not None:
            logs["probe_accuracy"] = history.history["accuracy"][-1]


def callbacks():
    return [LinearProbe()]

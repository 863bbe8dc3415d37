"""Workload 2b, leak: a `tf.function` retraced with a new Python float at every step.

A callback computes a weight statistic after every batch through a
`tf.function`, passing the step as a Python float. Python scalars are part of a
tf.function's cache key, so every call traces a new graph (~0.9 MB each) and the
function's cache only grows: memory climbs and each call gets slower. A new
process, or any reload that builds the function again, starts from an empty cache.
"""

import bench_common as common
import keras
import tensorflow as tf

FEATURES = 64
SAMPLES = 256 if common.QUICK else 4096
WIDTH = 32 if common.QUICK else 256
fit_kwargs = {"batch_size": 128}


def load_data():
    return common.synthetic(SAMPLES, FEATURES)


def build_model():
    return common.mlp(FEATURES, WIDTH)


class WeightStat(keras.callbacks.Callback):
    """Logs a decayed weight norm after every batch (the bug: `decay` is a Python float)."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.value = 0.0

        @tf.function
        def stat(kernel, step):
            return tf.reduce_sum(tf.square(kernel)) * tf.exp(-step * 1e-6)

        self.stat = stat

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        step = float(self.epoch * 10_000 + batch)  # a new Python float every call: a new trace
        self.value = self.stat(self.model.layers[0].kernel, step)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["weight_stat"] = float(self.value)


def callbacks():
    return [WeightStat()]

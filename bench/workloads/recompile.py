"""Workload 2c, leak: re-compiling the model every epoch to change the learning rate.

A callback sets the epoch's learning rate and calls `model.compile` again (with
the same optimizer object, so Adam's moments and `iterations` carry on), then
`model.make_train_function()`: `compile` drops the train function that `fit`
is about to call. Every epoch thus traces a new train step; the old graphs stay
reachable from TensorFlow's global gradient registry and `clear_session` does not
free them. Measured: +163 MB and 1.19x slower over 25 epochs in one process.
"""

import bench_common as common
import keras

FEATURES = 64
SAMPLES = 256 if common.QUICK else 4096
WIDTH = 32 if common.QUICK else 256
fit_kwargs = {"batch_size": 128}


def load_data():
    return common.synthetic(SAMPLES, FEATURES)


def build_model():
    return common.mlp(FEATURES, WIDTH)


class RecompileForLR(keras.callbacks.Callback):
    """Step decay of the learning rate, done the leaky way: compile again every epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        model = self.model
        optimizer = model.optimizer
        optimizer.learning_rate.assign(1e-3 * 0.97 ** epoch)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.make_train_function()  # fit calls model.train_function next; compile set it to None


def callbacks():
    return [RecompileForLR()]

"""Training that turns NaN in epoch 4: a callback poisons the weights at the end of epoch 3."""

import keras
import numpy as np

fit_kwargs = {"batch_size": 8}


def load_data():
    x = np.linspace(-1, 1, 32, dtype="float32").reshape(-1, 1)
    return x, 2 * x


def build_model():
    model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def _poison(epoch, logs):
    if epoch == 2:
        model = POISON.model
        model.set_weights([np.full_like(w, np.inf) for w in model.get_weights()])


POISON = keras.callbacks.LambdaCallback(on_epoch_end=_poison)


def callbacks():
    global POISON
    POISON = keras.callbacks.LambdaCallback(on_epoch_end=_poison)
    return [keras.callbacks.TerminateOnNaN(), POISON]

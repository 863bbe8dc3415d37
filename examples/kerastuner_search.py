"""Getting started with KerasTuner, as keras.io writes it, on synthetic data in place of MNIST's download.

`build_model(hp)` defines the model and its search space; `RandomSearch` with `executions_per_trial=2`
searches it (`tuner.search` with the same arguments as `model.fit`); then the best models and the results.
`segtrain run` runs it unmodified: every trial's executions train in worker processes of their own.
Its arguments: --trials N, --epochs N, --directory DIR (the tuner's project lives there).
"""

import argparse

import keras
import keras_tuner
import numpy as np
from keras import layers

parser = argparse.ArgumentParser()
parser.add_argument("--trials", type=int, default=3)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--directory", default="checkpoints/kerastuner")
args = parser.parse_args()

rng = np.random.default_rng(0)
x = rng.normal(size=(640, 28, 28)).astype("float32")
y = keras.utils.to_categorical(np.argmax(x[:, 0, :10], axis=1), 10)
(x_train, y_train), (x_val, y_val) = (x[:512], y[:512]), (x[512:], y[512:])


def build_model(hp):
    model = keras.Sequential()
    model.add(layers.Flatten())
    model.add(layers.Dense(units=hp.Int("units", min_value=32, max_value=512, step=32), activation="relu"))
    model.add(layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


tuner = keras_tuner.RandomSearch(
    hypermodel=build_model,
    objective="val_accuracy",
    max_trials=args.trials,
    executions_per_trial=2,
    overwrite=True,
    directory=args.directory,
    project_name="helloworld",
    seed=1,
)
tuner.search_space_summary()
tuner.search(x_train, y_train, epochs=args.epochs, validation_data=(x_val, y_val))

models = tuner.get_best_models(num_models=2)
best_model = models[0]
best_model.summary()
tuner.results_summary()
print(f"best val_accuracy: {tuner.oracle.get_best_trials(1)[0].score:.6f}")

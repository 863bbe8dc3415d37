"""Optuna example that optimizes multi-layer perceptrons using Keras, as Optuna's own Keras example writes it.

We optimize the validation accuracy of a small classifier, its architecture and its optimizer's learning
rate. Synthetic data stands in for the MNIST subset; a seeded sampler makes the trials repeatable.
`segtrain run` runs it unmodified: every trial trains in worker processes of its own. Its arguments:
--trials N, --epochs N, --sampler-seed N, --prune (report each epoch's accuracy and prune with the
median rule, as Optuna's pruning examples do), --jobs N (study.optimize's n_jobs).
"""

import argparse

import keras
import numpy as np
import optuna

parser = argparse.ArgumentParser()
parser.add_argument("--trials", type=int, default=4)
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--sampler-seed", type=int, default=10)
parser.add_argument("--prune", action="store_true")
parser.add_argument("--jobs", type=int, default=1)
args = parser.parse_args()

N_TRAIN_EXAMPLES = 192
N_VALID_EXAMPLES = 64
BATCHSIZE = 32
CLASSES = 3


def load_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_TRAIN_EXAMPLES + N_VALID_EXAMPLES, 8)).astype("float32")
    y = (np.argmax(x[:, :CLASSES], axis=1)).astype("int64")
    return (x[:N_TRAIN_EXAMPLES], y[:N_TRAIN_EXAMPLES]), (x[N_TRAIN_EXAMPLES:], y[N_TRAIN_EXAMPLES:])


def create_model(trial):
    # We optimize the number of layers, hidden units and the learning rate.
    n_layers = trial.suggest_int("n_layers", 1, 2)
    model = keras.Sequential([keras.Input(shape=(8,))])
    for i in range(n_layers):
        num_hidden = trial.suggest_int(f"n_units_l{i}", 4, 32, log=True)
        model.add(keras.layers.Dense(num_hidden, activation="relu"))
    model.add(keras.layers.Dense(CLASSES, activation="softmax"))

    learning_rate = trial.suggest_float("learning_rate", 1e-3, 1e-1, log=True)
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.RMSprop(learning_rate=learning_rate),
        metrics=["accuracy"],
    )
    return model


class Pruning(keras.callbacks.Callback):
    """Reports each epoch's validation accuracy to the trial and prunes it as the study's pruner says."""

    def __init__(self, trial):
        super().__init__()
        self.trial = trial

    def on_epoch_end(self, epoch, logs=None):
        self.trial.report(float(logs["val_accuracy"]), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"Trial was pruned at epoch {epoch}.")


def objective(trial):
    # Clear clutter from previous Keras session graphs.
    keras.backend.clear_session()

    (x_train, y_train), (x_valid, y_valid) = load_data()
    model = create_model(trial)
    model.fit(
        x_train,
        y_train,
        validation_data=(x_valid, y_valid),
        shuffle=True,
        batch_size=BATCHSIZE,
        epochs=args.epochs,
        callbacks=[Pruning(trial)] if args.prune else [],
        verbose=False,
    )

    # Evaluate the model accuracy on the validation set.
    score = model.evaluate(x_valid, y_valid, verbose=0)
    trial.set_user_attr("val_loss", float(score[0]))
    return score[1]


if __name__ == "__main__":
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2) if args.prune else optuna.pruners.NopPruner()
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.sampler_seed), pruner=pruner
    )
    study.optimize(objective, n_trials=args.trials, timeout=600, n_jobs=args.jobs)

    print(f"Number of finished trials: {len(study.trials)}")
    print("Best trial:")
    trial = study.best_trial
    print(f"  Value: {trial.value}")
    print("  Params: ")
    for key, value in trial.params.items():
        print(f"    {key}: {value}")

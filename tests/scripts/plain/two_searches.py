"""Two searches in one script, the second narrowed around the first's best, as people refine a search.

Under `segtrain run`, each `study.optimize` call's trials are runs of their own (`trials/`, then `trials-2/`),
and a worker that runs a trial of the second call passes the first at once: its trials are told already.
"""

import keras
import numpy as np
import optuna

rng = np.random.default_rng(3)
x = rng.normal(size=(96, 6)).astype("float32")
y = (x[:, :1] - 0.5 * x[:, 1:2]).astype("float32")


def objective(trial, low, high):
    units = trial.suggest_int("units", low, high)
    model = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(1)])  # fmt: skip
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    return float(model.evaluate(x, y, verbose=0))


optuna.logging.set_verbosity(optuna.logging.WARNING)
wide = optuna.create_study(study_name="wide", sampler=optuna.samplers.RandomSampler(seed=0))
wide.optimize(lambda trial: objective(trial, 2, 32), n_trials=2)
best = wide.best_params["units"]
print(f"wide: {len(wide.trials)} trials, best units {best}")

narrow = optuna.create_study(study_name="narrow", sampler=optuna.samplers.RandomSampler(seed=1))
narrow.optimize(lambda trial: objective(trial, best, best + 4), n_trials=2)
print(f"narrow: {len(narrow.trials)} trials, units {sorted(t.params['units'] for t in narrow.trials)}")

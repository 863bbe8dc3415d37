"""The sweep benchmark's model and search space (bench/sweep.py), shared by all three peers.

An MLP 64 → units1 → units2 → 10 (units 64..256, Adam's learning rate
1e-4..1e-2 on a log scale) on 3,000 samples of synthetic 64-feature data
(2,400 to train, 600 to validate), batch 32. segtrain reads it as a sweep
script (`search_space(trial)`, `build_model(params)`, `load_data()`,
`fit_kwargs`); bench/sweep.py's in-process Optuna loop calls the same
functions with an Optuna trial, and its KerasTuner peer with an adapter that
turns `trial.suggest_int/suggest_float` into `hp.Int/hp.Float`, so every peer
searches the same space with the same model and data.
"""

import bench_common as common

FEATURES = 64
SAMPLES = 3000
TRAIN = 2400
fit_kwargs = {"batch_size": 32}


def load_data():
    x, y = common.synthetic(SAMPLES, FEATURES)
    return (x[:TRAIN], y[:TRAIN]), (x[TRAIN:], y[TRAIN:])


def search_space(trial):
    return {
        "units1": trial.suggest_int("units1", 64, 256),
        "units2": trial.suggest_int("units2", 64, 256),
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
    }


def build_model(params):
    import keras

    model = keras.Sequential([
        keras.Input(shape=(FEATURES,)),
        keras.layers.Dense(int(params["units1"]), activation="relu"),
        keras.layers.Dense(int(params["units2"]), activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(float(params["lr"])), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model

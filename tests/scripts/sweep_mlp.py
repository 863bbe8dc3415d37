"""A small classifier with a search space, for `segtrain sweep`.

SWEEP_PLAN (e.g. "good,good,bad,boom,nan") sets what each trial number gets:
good: a learning rate that learns; bad: one that barely moves (a pruner's
victim); boom: build_model raises for its params; nan: a target is NaN,
so the loss does; slow: good, but each epoch ends a second later (a trial
that is surely still training when a test acts). Trials past the plan are good.
"""

import os
import time

import keras
import numpy as np

fit_kwargs = {"batch_size": 32}


def load_data(params):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(384, 4)).astype("float32")
    y = (x.sum(1, keepdims=True) > 0).astype("float32")
    if params.get("kind") == "nan":
        y[5, 0] = np.nan
    return (x[:320], y[:320]), (x[320:], y[320:])


def build_model(params):
    if params.get("kind") == "boom":
        raise ValueError(f"no model with {params['units']} units and kind boom")
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(params["units"], activation="relu"),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(params["lr"]), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def search_space(trial):
    plan = [k for k in os.environ.get("SWEEP_PLAN", "").split(",") if k]
    kind = plan[trial.number] if trial.number < len(plan) else "good"
    return {
        "units": trial.suggest_int("units", 4, 16, log=True),
        "lr": 1e-7 if kind == "bad" else trial.suggest_float("lr", 0.02, 0.08, log=True),
        "kind": kind,
    }


def callbacks(params):
    if params.get("kind") != "slow":
        return []
    return [keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: time.sleep(1.0))]

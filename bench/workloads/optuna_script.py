"""An Optuna search script as people write one (bench/search_script.py runs it with `python` and `segtrain run`).

The sweep benchmark's model, data and space (bench/workloads/sweep_mlp.py), in Optuna's own shape:
`objective(trial)` clears the Keras session, builds, fits and evaluates; `optuna.create_study(...)`,
`study.optimize(objective, n_trials=N)`, then the best trial printed. A seeded RandomSampler makes both runs
draw the same params. The one thing a user's script would not have: a `study.optimize` callback that appends,
after each trial, its params and this process's RSS and peak RSS to $BENCH_TRIALS (one JSON line per trial),
so that the plain run's per-trial memory can be read (under `segtrain run` it runs in the driver, which trains
nothing: the trials' own memory is in their runs' segments.jsonl).
"""

import argparse
import json
import os
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras
import optuna
import sweep_mlp

parser = argparse.ArgumentParser()
parser.add_argument("--trials", type=int, default=30)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()


def objective(trial):
    keras.backend.clear_session()
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_valid, y_valid) = sweep_mlp.load_data()
    model = sweep_mlp.build_model(sweep_mlp.search_space(trial))
    model.fit(x_train, y_train, validation_data=(x_valid, y_valid), batch_size=32, epochs=args.epochs, verbose=0)
    return model.evaluate(x_valid, y_valid, verbose=0)[1]


def record(study, trial):
    out = os.environ.get("BENCH_TRIALS")
    if out:
        with open(out, "a") as f:
            statm = Path("/proc/self/statm").read_text().split()
            rss = int(statm[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            record = {"number": trial.number, "params": trial.params, "rss_mb": rss, "peak_rss_mb": peak}
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=args.seed))
    study.optimize(objective, n_trials=args.trials, callbacks=[record], gc_after_trial=True)
    print(f"Number of finished trials: {len(study.trials)}")
    print(f"Best value: {study.best_value:.4f}, params: {study.best_params}")

"""A KerasTuner search script as people write one (bench/search_script.py --library kerastuner).

The sweep benchmark's model, data and space (bench/workloads/sweep_mlp.py) in KerasTuner's own shape:
`build_model(hp)`, `RandomSearch(..., seed=S, overwrite=True)`, `tuner.search(x, y, epochs=...,
validation_data=...)`, then the best hyperparameters printed. The one thing a user's script would not have:
a Keras callback given to `search` that appends, at the end of each trial's `fit`, its params and the RSS and
peak RSS of the process that trained it to $BENCH_TRIALS (under `segtrain run`: the trial's worker).
"""

import argparse
import json
import os
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras
import keras_tuner
import sweep_mlp

parser = argparse.ArgumentParser()
parser.add_argument("--trials", type=int, default=30)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--seed", type=int, default=1)  # KerasTuner takes a seed of 0 for none
parser.add_argument("--directory", default="checkpoints/kerastuner-bench")
args = parser.parse_args()


class Record(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        out = os.environ.get("BENCH_TRIALS")
        if out:
            statm = Path("/proc/self/statm").read_text().split()
            rss = int(statm[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            with open(out, "a") as f:
                f.write(json.dumps({"params": None, "rss_mb": rss, "peak_rss_mb": peak}) + "\n")


def build_model(hp):
    return sweep_mlp.build_model({
        "units1": hp.Int("units1", 64, 256),
        "units2": hp.Int("units2", 64, 256),
        "lr": hp.Float("lr", 1e-4, 1e-2, sampling="log"),
    })


if __name__ == "__main__":
    (x_train, y_train), (x_valid, y_valid) = sweep_mlp.load_data()
    tuner = keras_tuner.RandomSearch(build_model, objective="val_accuracy", max_trials=args.trials, seed=args.seed,
                                     overwrite=True, directory=args.directory, project_name="bench")
    tuner.search(x_train, y_train, epochs=args.epochs, batch_size=32, validation_data=(x_valid, y_valid),
                 callbacks=[Record()], verbose=0)
    best = tuner.get_best_hyperparameters(1)[0]
    print(f"Best hyperparameters: {best.values}")

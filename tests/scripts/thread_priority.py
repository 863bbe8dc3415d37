"""dict_io.py, and at every epoch's end the nice value of each thread of the training process ($PRIORITY_LOG)."""

import json
import os

import keras
from dict_io import build_model, fit_kwargs, load_data  # noqa: F401


def _nice_values():
    values = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # the thread has ended
        values.append(int(stat[stat.rindex(")") + 2 :].split()[16]))  # field 19 of proc(5): nice
    return values


def _record(epoch, logs):
    with open(os.environ["PRIORITY_LOG"], "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "nice": _nice_values()}) + "\n")


def callbacks():
    return [keras.callbacks.LambdaCallback(on_epoch_end=_record)]

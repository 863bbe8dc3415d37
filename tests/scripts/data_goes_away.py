"""dict_io.py, whose data can be read only $DATA_LOADS times (attempts counted in the file $LOAD_LOG):
after that, load_data() fails the way a lost dataset mount would."""

import os

from dict_io import build_model, fit_kwargs  # noqa: F401
from dict_io import load_data as _load


def load_data():
    log = os.environ.get("LOAD_LOG")
    if log:
        with open(log, "a+") as f:
            f.write(f"{os.getpid()}\n")
            f.seek(0)
            attempt = len(f.read().splitlines())
        if attempt > int(os.environ["DATA_LOADS"]):
            raise RuntimeError(f"the dataset mount went away (load {attempt})")
    return _load()

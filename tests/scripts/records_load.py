"""dict_io.py, and load_data() records when and where it ran (file named by $LOAD_LOG)."""

import json
import os
import time

from dict_io import build_model, fit_kwargs  # noqa: F401
from dict_io import load_data as _load


def load_data():
    with open(os.environ["LOAD_LOG"], "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "time": time.time()}) + "\n")
    return _load()

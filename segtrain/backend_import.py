"""Import the Keras backend, at the lowest CPU priority where a worker waits for its turn.

A pre-started worker imports its backend while the current segment trains on
the same cores. TensorFlow's import alone is ~4 CPU-seconds (on a 2.8 GHz
Xeon), and at equal priority a good part of it comes out of training's time:
on 2 vCPUs a plain fit lost 1.37 s of epoch time per concurrent import at nice 0,
1.05 s at nice 19, no less under SCHED_IDLE (bench/import_contention.py; where
cores are idle it loses nothing either way).

Linux keeps a nice value per thread, and an unprivileged thread cannot lower it
again, so the import runs in a thread of its own at nice 19 that ends with it;
the worker's main thread, which trains after the take-over, keeps its priority.
Only the backend's library is imported there, and only TensorFlow and JAX,
whose imports start no thread that would inherit the low priority (numpy's BLAS
threads start with numpy, imported first at full priority; tests/test_prestart.py
checks every thread of every training worker). Keras' JAX backend starts XLA's
runtime when Keras is imported, and a script or `load_data()` may start
anything, so those stay at full priority, as does any other backend. A lower
priority is no promise of progress on a machine whose every core other jobs
keep busy: the supervisor gives up on a waiting worker that has not imported in
time and starts a fresh one (`supervisor._ProcessRunner._worker`).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import threading
import time
from pathlib import Path

LOW_PRIORITY = 19  # the lowest nice value: CPU time only when no other thread wants it
_LIBRARIES = {"tensorflow": "tensorflow", "jax": "jax"}  # backend -> library known to start no thread on import


def configured_backend() -> str:
    """The backend Keras will pick, found as Keras finds it, without importing Keras (which imports it)."""
    if "KERAS_BACKEND" in os.environ:
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    try:
        return json.loads((Path(home) / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def import_backend(low_priority: bool) -> float:
    """Import the backend's library (and numpy); return the seconds it took.

    With `low_priority` the import runs in a thread at nice 19 on Linux (where
    nice is per thread; elsewhere it would lower the whole process). A failed
    import is left for the script's own import to raise again, where it is reported.
    """
    t0 = time.perf_counter()
    import numpy  # noqa: F401 - its BLAS threads start here, at this thread's priority

    library = _LIBRARIES.get(configured_backend())
    if library is None or importlib.util.find_spec(library) is None:
        return time.perf_counter() - t0
    if not (low_priority and sys.platform.startswith("linux")):
        _import_quietly(library)
        return time.perf_counter() - t0
    thread = threading.Thread(target=_import_at_low_priority, args=(library,), name="segtrain-import")
    thread.start()
    thread.join()
    return time.perf_counter() - t0


def _import_at_low_priority(library: str) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOW_PRIORITY)  # this thread only
    except OSError:
        pass
    _import_quietly(library)


def _import_quietly(library: str) -> None:
    try:
        importlib.import_module(library)
    except Exception:  # noqa: BLE001 - see import_backend
        pass

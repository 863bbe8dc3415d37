"""Import the Keras backend's library at the lowest CPU priority, for a worker that waits for its turn.

A pre-started worker imports its backend while the current segment trains on
the same cores. TensorFlow's import alone is ~4 CPU-seconds (on a 2.8 GHz
Xeon), and at equal priority a good part of it comes out of training's time:
on 2 vCPUs a plain fit lost 1.37 s of epoch time per concurrent import at nice 0,
0.55-1.05 s at nice 19, no less under SCHED_IDLE (bench/import_contention.py;
where cores are idle it loses nothing either way).

Linux keeps a nice value per thread, and an unprivileged thread cannot lower it
again, so the import runs in a thread of its own at nice 19 that ends with it;
the worker's main thread, which trains after the take-over, keeps its priority.
Only the backend's library is imported there, and only TensorFlow's or JAX's,
whose imports start no thread that would inherit the low priority: BLAS thread
pools start as numpy and `scipy.linalg` load (scipy brings an OpenBLAS of its
own, and Keras imports scikit-learn where it is installed, which imports
`scipy.linalg`), so both are imported first, at full priority (0.16 s for
`scipy.linalg` here, only where scikit-learn is installed);
tests/test_prestart.py checks every thread of every training worker. Keras itself starts a thread
when imported on JAX, and a script or `load_data()` may start anything, so
those stay at full priority, as does any other backend.

The import runs with the garbage collector off, and what it made is frozen
after (`gc.freeze`), as the zygote does for the workers it forks: 4.3 -> 3.5 s
for TensorFlow here, and a full collection walks the worker's own objects only.

Which backend is the one the run's previous worker used: a script may choose it
itself (`os.environ["KERAS_BACKEND"] = "jax"` before `import keras`), and
importing TensorFlow first would import Keras with TensorFlow's.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import sys
import threading

from segtrain import backends

LOW_PRIORITY = 19  # the lowest nice value: a scheduler weight of 15 against a nice-0 thread's 1024


def import_at_low_priority(backend: str) -> None:
    """Import `backend`'s library (after numpy) in a thread at nice 19.

    Does nothing for backends whose import starts threads, off Linux (where nice is per process, not
    per thread), where the library is missing, or where it is imported already (a worker forked from
    the zygote). A failed import is left for
    the script's own import to raise again, where it is reported.
    """
    import numpy  # noqa: F401 - its BLAS threads start here, at this thread's priority

    library = backends.by_name(backend)
    if not library.quiet_import or not sys.platform.startswith("linux"):
        return
    if library.library in sys.modules or importlib.util.find_spec(library.library) is None:
        return  # imported already (a forked worker: its zygote's, frozen there), or not installed
    if importlib.util.find_spec("sklearn") is not None:  # Keras imports it, and it scipy.linalg, which loads an
        importlib.import_module("scipy.linalg")  # OpenBLAS of its own: its threads start here, at full priority
    thread = threading.Thread(target=_import, args=(library.library,), name="segtrain-import")
    gc.disable()  # as in the zygote (`segtrain.worker.zygote_main`): no collection walks the import's heap
    try:
        thread.start()
        thread.join()
    finally:
        gc.freeze()  # what the import made lives as long as the worker: its collections leave it alone
        gc.enable()


def _import(library: str) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOW_PRIORITY)  # this thread only
        importlib.import_module(library)
    except Exception:
        pass

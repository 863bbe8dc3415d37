"""Whether an accelerator is there, and whether this process has touched it — without touching it.

A pre-started worker waits while the current segment trains on the GPU. It
must not create a device context or take device memory before it takes over:
TensorFlow grabs nearly all GPU memory when its runtime starts (unless memory
growth is on), and even a bare CUDA context costs hundreds of MB. So before
taking over, a worker only imports; the script's `load_data()`, which may
create tensors, waits for the hand-over wherever an accelerator may be present.
"""

from __future__ import annotations

import os

from segtrain import backends

DEFER_ENV = "SEGTRAIN_DEFER_DATA"


def accelerator_present() -> bool:
    """Whether the backend may see an accelerator. Creates no device context."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    return backends.current().accelerator_present()


def defer_data() -> bool:
    """Whether a waiting worker must leave `load_data()` until it takes over.

    True where an accelerator may be present, or where `SEGTRAIN_DEFER_DATA=1`
    asks for it (say, for data too big to hold twice).
    """
    flag = os.environ.get(DEFER_ENV)
    if flag is not None:
        return flag not in ("", "0")
    return accelerator_present()


def device_runtime_started() -> bool:
    """Whether this process has started any backend's device runtime (TF's eager context, XLA, CUDA).

    Every backend is asked, whichever Keras runs: a script may import another
    library. Only modules already imported are asked, so asking starts nothing.
    """
    return any(backend.runtime_started() for backend in backends.every())

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
from pathlib import Path

DEFER_ENV = "SEGTRAIN_DEFER_DATA"


def accelerator_present() -> bool:
    """Whether the backend may see an accelerator. Creates no device context.

    TensorFlow's `list_physical_devices` enumerates devices without starting the
    runtime; for other backends (whose device queries start it) the device
    files of NVIDIA and AMD drivers are looked at instead.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return any(Path("/dev").glob("nvidia[0-9]*")) or Path("/dev/kfd").exists()


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
    """Whether this process has started its backend's device runtime.

    That is TensorFlow's eager context, JAX's XLA backends (on a GPU, creating
    them preallocates most of its memory), or PyTorch's CUDA context: each is
    what takes a device's memory. Only modules already imported are asked, so
    asking imports nothing and starts nothing.
    """
    import sys

    tf_context = sys.modules.get("tensorflow.python.eager.context")
    if tf_context is not None and getattr(tf_context.context(), "_initialized", False):
        return True
    xla_bridge = sys.modules.get("jax._src.xla_bridge")
    if xla_bridge is not None:
        initialized = getattr(xla_bridge, "backends_are_initialized", lambda: bool(xla_bridge._backends))
        if initialized():
            return True
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_initialized()

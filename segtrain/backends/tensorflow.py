"""TensorFlow: op determinism, a `tf.data` pipeline of steps, `tf.config` for devices and memory."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from typing import Any

from segtrain.backends.base import KerasBackend
from segtrain.backends.distribution import Replicas
from segtrain.errors import ConfigError


class TensorFlow(KerasBackend):
    quiet_import = True  # importing tensorflow starts no thread (tests/test_prestart.py checks every thread)
    formats = frozenset({"keras", "h5", "savedmodel"})

    def __init__(self) -> None:
        super().__init__("tensorflow", "tensorflow")

    def seed(self, seed: int, keep_compiled: bool = False) -> None:
        import tensorflow as tf

        if keep_compiled:
            _seed_keeping_kernels(seed, super().seed)
        else:
            super().seed(seed)
        tf.config.experimental.enable_op_determinism()

    def array_input(self, batches: Any, first_step: int, last_step: int) -> Any:
        import tensorflow as tf

        def spec(a: Any) -> Any:
            if isinstance(a, dict):
                return {k: spec(v) for k, v in a.items()}
            return tf.TensorSpec(shape=(None, *a.shape[1:]), dtype=a.dtype)

        signature = tuple(spec(a) for a in batches.arrays)

        def generate() -> Any:
            for step in range(first_step, last_step):
                yield batches.batch(step)

        ds = tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)
        # The buffer is fixed, so autotuning buys nothing; and with it on, destroying the
        # iterator at the end of fit waits for the autotune thread's next wake-up (measured:
        # up to 10-40 s, in bench/results/2026-11-27-*; docs/benchmarks.md).
        options = tf.data.Options()
        options.autotune.enabled = False
        return ds.with_options(options)

    def split_cpu(self, devices: int) -> None:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        wanted = [tf.config.LogicalDeviceConfiguration()] * devices
        if tf.config.get_logical_device_configuration(cpu) == wanted:
            return
        try:
            tf.config.set_logical_device_configuration(cpu, wanted)
        except RuntimeError as e:  # the runtime started already (the script made tensors when imported)
            raise ConfigError(
                f"SEGTRAIN_CPU_DEVICES={devices}: TensorFlow's runtime started before segtrain could split the CPU "
                f"({e}). Create no tensors at import time of the script."
            ) from e

    def data_parallel(self) -> Any:
        """A `MirroredStrategy` over the GPUs, or where there is none over the (split) CPU's devices."""
        import tensorflow as tf

        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        strategy = tf.distribute.MirroredStrategy(devices)
        return Replicas(strategy.num_replicas_in_sync, strategy)

    def accelerator_present(self) -> bool:
        """`list_physical_devices` enumerates devices without starting the runtime."""
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))

    def runtime_started(self) -> bool:
        context = sys.modules.get("tensorflow.python.eager.context")
        return context is not None and bool(getattr(context.context(), "_initialized", False))

    def device_memory_mb(self) -> dict[str, float] | None:
        import tensorflow as tf

        try:
            if not tf.config.list_logical_devices("GPU"):
                return None
            info = tf.config.experimental.get_memory_info("GPU:0")
        except (RuntimeError, ValueError):
            return None
        return {"current": info["current"] / 1e6, "peak": info["peak"] / 1e6}

    def reset_device_peak(self) -> None:
        import tensorflow as tf

        try:
            if tf.config.list_logical_devices("GPU"):
                tf.config.experimental.reset_memory_stats("GPU:0")
        except (RuntimeError, ValueError):
            pass


def _seed_keeping_kernels(seed: int, seed_all: Callable[[int], None]) -> None:
    """`seed_all(seed)` (Keras' `set_random_seed`), but TensorFlow's global seed set without dropping its kernels.

    `tf.random.set_seed` also clears the eager context's caches, and with them
    every instantiated function: the next step of a warmed-up model instantiates
    its train function again (measured: 0.10 s on a 3-layer MLP, against a
    1.5 ms step; bench/start.py's mission shape pays it at every boundary).
    The clearing exists to restart stateful random kernels (`tf.random.uniform`
    without a Keras seed) from their seeds; a worker keeps what its warm-up step
    advanced, and such kernels restart at every boundary anyway, never exactly
    (docs/guides/exactness.md). The global seed, and the op seeds that follow
    from the global seed, are reset as `set_seed` resets them. The context's seed
    setter is private; where this TensorFlow lacks it, seeding clears as before.
    """
    from tensorflow.python.eager import context  # private: the public setter always clears the caches

    ctx = context.context()
    if not all(hasattr(ctx, name) for name in ("_set_global_seed", "_seed", "_rng")):
        seed_all(seed)
        return

    def set_only(value: int) -> None:
        ctx._seed, ctx._rng = value, random.Random(value)

    ctx._set_global_seed = set_only  # this instance only, for this call
    try:
        seed_all(seed)
    finally:
        del ctx._set_global_seed  # the class's method again

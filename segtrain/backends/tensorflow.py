"""TensorFlow: op determinism, a `tf.data` pipeline of steps, `tf.config` for devices and memory."""

from __future__ import annotations

import sys
from typing import Any

from segtrain.backends.base import KerasBackend
from segtrain.backends.distribution import Replicas
from segtrain.errors import ConfigError


class TensorFlow(KerasBackend):
    quiet_import = True  # importing tensorflow starts no thread (tests/test_prestart.py checks every thread)
    formats = frozenset({"keras", "h5", "savedmodel"})

    def __init__(self) -> None:
        super().__init__("tensorflow", "tensorflow")

    def seed(self, seed: int) -> None:
        import tensorflow as tf

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

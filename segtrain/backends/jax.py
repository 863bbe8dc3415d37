"""JAX: XLA's backends are its device runtime, and `Device.memory_stats()` its memory."""

from __future__ import annotations

import sys
from typing import Any

from segtrain.backends.base import KerasBackend
from segtrain.errors import ConfigError


class Jax(KerasBackend):
    quiet_import = True  # importing jax starts no thread (Keras on JAX does: it is imported at full priority)

    def __init__(self) -> None:
        super().__init__("jax", "jax")

    def runtime_started(self) -> bool:
        """Whether XLA's backends exist: on a GPU, creating them preallocates most of its memory."""
        bridge = sys.modules.get("jax._src.xla_bridge")
        if bridge is None:
            return False
        initialized = getattr(bridge, "backends_are_initialized", lambda: bool(bridge._backends))
        return bool(initialized())

    def split_cpu(self, devices: int) -> None:
        """XLA reads the host device count when JAX is imported (`distribution.split_cpu_early`); check it took."""
        import jax

        found = len(jax.devices("cpu"))
        if found != devices and jax.default_backend() == "cpu":
            raise ConfigError(
                f"SEGTRAIN_CPU_DEVICES={devices}, but JAX has {found} CPU devices: JAX was imported before segtrain "
                "could set XLA_FLAGS. Set XLA_FLAGS=--xla_force_host_platform_device_count=N yourself."
            )

    def data_parallel(self) -> Any:
        """Keras' `DataParallel` distribution over every local device."""
        import jax
        import keras

        from segtrain.backends.distribution import Replicas

        devices = jax.local_devices()
        return Replicas(len(devices), keras.distribution.DataParallel(devices=devices))

    def device_memory_mb(self) -> dict[str, float] | None:
        import jax

        try:
            device = jax.devices()[0]
            if device.platform == "cpu":
                return None
            stats = device.memory_stats() or {}
        except (RuntimeError, ValueError, AttributeError):
            return None
        return {"current": stats.get("bytes_in_use", 0) / 1e6, "peak": stats.get("peak_bytes_in_use", 0) / 1e6}

"""JAX: XLA's backends are its device runtime, and `Device.memory_stats()` its memory."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from segtrain.backends.base import KerasBackend
from segtrain.backends.distribution import Replicas
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

        found = len(jax.local_devices(backend="cpu"))
        if found != devices and jax.default_backend() == "cpu":
            raise ConfigError(
                f"SEGTRAIN_CPU_DEVICES={devices}, but JAX has {found} CPU devices: JAX was imported before segtrain "
                "could set XLA_FLAGS. Set XLA_FLAGS=--xla_force_host_platform_device_count=N yourself."
            )

    def data_parallel(self) -> Any:
        """Keras' `DataParallel` over every device: this host's, or every host's once joined.

        With many hosts each process feeds its own share of every batch
        (`training.data` cuts it), which Keras makes one global batch of.
        """
        import jax
        import keras

        devices = jax.devices()
        engine = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=jax.process_count() == 1)
        return Replicas(len(devices), engine)

    def join(self, hosts: Any) -> Any:
        """JAX's distributed runtime, with gloo for collectives between CPUs (GPUs use NCCL either way).

        JAX's preemption service is left off: it takes SIGTERM for a notice of its own (measured: a worker's
        own handler no longer ran); segtrain's signal policy stops every process at one batch itself.

        Joining ends with one collective, while every process has just connected: it starts the runtime and
        gloo's connections between the processes, whose first wait for a peer is gloo's own 30 s, not
        `hosts.timeout` (measured: a peer that came to its first collective 30 s later, loading its data,
        ended the others with "Gloo context initialization failed"). Once connected, a collective waits for
        its peers as long as they live; a dead one's heartbeat stops within `hosts.timeout`.
        """
        import jax

        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.config.update("jax_enable_preemption_service", False)
        jax.distributed.initialize(
            hosts.coordinator,
            hosts.count,
            hosts.index,
            initialization_timeout=hosts.timeout,
            heartbeat_timeout_seconds=hosts.timeout,
            shutdown_timeout_seconds=hosts.timeout,
        )
        peers = JaxPeers(hosts.index, hosts.count, hosts.timeout)
        peers.gather([hosts.index])
        return peers

    def compilation_cache(self, directory: str) -> dict[str, str]:
        """JAX's persistent compilation cache, every program in it (its default keeps those compiled in >= 1 s)."""
        return {"JAX_COMPILATION_CACHE_DIR": directory, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}

    def peers_lost(self, text: str) -> bool:
        """The one reading of JAX's words about another process: its error's text, or a worker's last words."""
        return any(marker in text for marker in _LOST_MARKERS)

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


# What JAX says when another process is gone or never came (measured, jax 0.10.2, two processes, kill -9 of
# either at each step of joining, training and leaving):
# - a collective whose peer closed its end: "Gloo AllGather failed: ... Connection closed by peer";
# - gloo's first connection to a peer that never came to it: "Gloo context initialization failed:
#   DEADLINE_EXCEEDED: GetKeyValue() timed out";
# - the coordination service's own waits (a barrier, a peer's registration): "DEADLINE_EXCEEDED: Barrier timed
#   out"; the coordinator gone: "UNAVAILABLE: Failed to send RPC to coordination service";
# - the runtime ending this process (the worker's last words) when a peer's heartbeat stops, it never registers
#   (the coordinator refused it until --peer-timeout) or the shutdown barrier fails: "Terminating process
#   because the JAX distributed service detected fatal errors", then one of those statuses.
# Only many hosts' workers ask: there, these statuses come from nothing but the runtime's waits for the others.
_LOST_MARKERS = (
    "Connection closed by peer",
    "Connection reset by peer",
    "JAX distributed service",
    "coordination service",
    "heartbeat",
    "Gloo context initialization failed",
    "Barrier timed out",
    "DEADLINE_EXCEEDED",
    "UNAVAILABLE:",
)


class JaxPeers:
    """The run's processes through JAX's runtime: small collectives over every device."""

    def __init__(self, index: int, count: int, timeout: int):
        self.index, self.count, self.timeout = index, count, timeout

    @property
    def writes(self) -> bool:
        return self.index == 0

    def gather(self, values: Any) -> list[list[int]]:
        from jax.experimental import multihost_utils

        gathered = multihost_utils.process_allgather(np.asarray(values, dtype=np.int32))
        return [[int(v) for v in row] for row in np.asarray(gathered)]

    def barrier(self) -> None:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("segtrain")

    @contextmanager
    def alone(self) -> Iterator[None]:
        import keras

        shared = keras.distribution.distribution()
        keras.distribution.set_distribution(None)
        try:
            yield
        finally:
            keras.distribution.set_distribution(shared)

    def leave(self) -> None:
        """JAX's shutdown barrier: process 0's coordination service ends only once every process has left it
        (measured: a worker whose coordinator exits first is aborted by JAX's runtime). Where another process
        is gone, the runtime ends this one within the timeout, after its result (`runners.stopped_by_loss`)."""
        import jax

        jax.distributed.shutdown()

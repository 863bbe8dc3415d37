"""The Keras backends behind one Protocol: TensorFlow, JAX and PyTorch.

Everything segtrain does differently per backend is a method of `Backend`;
no other module asks which backend runs. `current()` is the one Keras runs in
this process; `by_name()` gives one without importing Keras or its library
(a waiting worker uses it before it imports anything heavy).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from segtrain.backends.base import KerasBackend
from segtrain.backends.torch import Torch


class Backend(Protocol):
    """What segtrain needs from a Keras backend."""

    name: str  # Keras' name for it: keras.backend.backend()
    library: str  # the module it imports
    quiet_import: bool  # importing `library` starts no thread (so it may be imported in a low-priority thread)
    formats: frozenset[str]  # checkpoint formats it can save and load

    def seed(self, seed: int, keep_compiled: bool = False) -> None:
        """Seed Python, NumPy and the backend, and make its ops deterministic where it can.

        `keep_compiled`: keep what the backend has compiled in this process (a
        warmed-up model's functions) where seeding would otherwise drop it.
        """

    def array_input(self, batches: Any, first_step: int, last_step: int) -> Any:
        """Steps [first_step, last_step) of `batches` (`ArrayBatches.batch(step)`) as `fit` input, in order."""

    def accelerator_present(self) -> bool:
        """Whether it may see an accelerator; starts no device runtime."""

    def runtime_started(self) -> bool:
        """Whether this process has started its device runtime; imports nothing (reads `sys.modules`)."""

    def device_memory_mb(self) -> dict[str, float] | None:
        """Memory in use and its peak on the first accelerator, in MB; None without one."""

    def reset_device_peak(self) -> None:
        """Start a new peak for `device_memory_mb` (each segment reports its own)."""

    def global_rng_state(self) -> str | None:
        """The state of the generator that unseeded ops draw from, as text; None where Keras draws from none.

        Keras' layers draw from their own `SeedGenerator`s (saved with the
        model's RNG states), except where a backend takes a fast path through
        its global generator: torch's unseeded Dropout.
        """

    def set_global_rng_state(self, state: str) -> None:
        """Set back what `global_rng_state` returned."""

    def split_cpu(self, devices: int) -> None:
        """Make the CPU `devices` devices (`SEGTRAIN_CPU_DEVICES`), before the device runtime starts."""

    def data_parallel(self) -> Any:
        """Its own data-parallel engine over every device of the run (every host's, once joined), as `Replicas`."""

    def join(self, hosts: Any) -> Any:
        """Join the other processes of `hosts` (a `hosts.Hosts`) before the device runtime starts; the `hosts.Peers`."""

    def peers_lost(self, text: str) -> bool:
        """Whether a worker's error or last words say another process of the run is gone (it died, or never came)."""

    def compilation_cache(self, directory: str) -> dict[str, str]:
        """Environment variables that keep its compiled code in `directory` for the next worker; {} without one."""


def by_name(name: str) -> Backend:
    """The backend Keras calls `name`; one segtrain does not know gets Keras' own behaviour and no device figures."""
    if name == "tensorflow":
        from segtrain.backends.tensorflow import TensorFlow  # deferred: a cycle (distribution imports this package)

        return TensorFlow()
    if name == "jax":
        from segtrain.backends.jax import Jax  # deferred: a cycle (distribution imports this package)

        return Jax()
    if name == "torch":
        return Torch()
    return KerasBackend(name, name)


def current() -> Backend:
    """The backend Keras runs in this process (imports Keras)."""
    import keras

    return by_name(keras.backend.backend())


def compilation_cache_environ(directory: str) -> dict[str, str]:
    """What every backend needs in a worker's environment (before its import) to share compiled code in
    `directory`: each reads its own variables, so one environment serves whichever backend the script runs."""
    found: dict[str, str] = {}
    for backend in every():
        found.update(backend.compilation_cache(directory))
    return found


def every() -> Iterator[Backend]:
    """Each backend segtrain knows, whichever Keras runs: a process may have imported several libraries."""
    for name in ("tensorflow", "jax", "torch"):
        yield by_name(name)

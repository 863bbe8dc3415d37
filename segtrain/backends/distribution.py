"""Data parallelism on the backends' own engines, and a CPU split into devices to run it without accelerators.

`--distribute data-parallel` trains each segment over every local device:
TensorFlow's `MirroredStrategy` (the model built, compiled, loaded and trained
in its scope), or Keras' `DataParallel` distribution on JAX. The batch size in
`fit_kwargs` is the global batch, split across the replicas. segtrain adds no
engine of its own: each backend's `data_parallel()` returns its own.

`SEGTRAIN_CPU_DEVICES=N` splits the CPU into N devices on either backend
(TensorFlow's logical devices; XLA's `--xla_force_host_platform_device_count`
on JAX, which must be set before JAX is imported: `split_cpu_early` does that
first thing in a process), so that the distributed path runs without an
accelerator: in tests, and for users without one.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from segtrain import backends
from segtrain.errors import ConfigError
from segtrain.options import Choice

CPU_DEVICES_ENV = "SEGTRAIN_CPU_DEVICES"
_XLA_FLAG = "--xla_force_host_platform_device_count"


class Distribute(Choice):
    """How a segment uses the devices of its host."""

    NONE = "none"
    DATA_PARALLEL = "data-parallel"


@dataclass(frozen=True)
class Replicas:
    """A backend's data-parallel engine: the scope to build, load and train in, and how many replicas train."""

    count: int
    engine: Any = None  # the backend's own: a MirroredStrategy, a keras.distribution.DataParallel (both have scope())

    def scope(self) -> AbstractContextManager[Any]:
        return nullcontext() if self.engine is None else self.engine.scope()


ONE = Replicas(1)


def cpu_devices() -> int | None:
    """`SEGTRAIN_CPU_DEVICES`, checked: how many devices to split the CPU into; None where unset."""
    text = os.environ.get(CPU_DEVICES_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{CPU_DEVICES_ENV} must be a positive number of devices. Received: {text!r}")
    return int(text)


def split_cpu_early() -> None:
    """Before JAX is imported: ask XLA for `SEGTRAIN_CPU_DEVICES` host devices (TensorFlow ignores the flag)."""
    n = cpu_devices()
    flags = os.environ.get("XLA_FLAGS", "")
    if n is not None and _XLA_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_XLA_FLAG}={n}".strip()


def split_cpu() -> None:
    """Split the CPU into `SEGTRAIN_CPU_DEVICES` devices on the backend that runs here (before its runtime starts)."""
    n = cpu_devices()
    if n is not None:
        backends.current().split_cpu(n)


def replicas(distribute: str) -> Replicas:
    """The engine of `distribute` on the backend that runs here, the CPU split first where asked."""
    split_cpu()
    if distribute == Distribute.NONE:
        return ONE
    return backends.current().data_parallel()

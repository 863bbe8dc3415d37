"""Measurements of the running process: resident memory and device memory."""

from __future__ import annotations

import os
import resource
import sys
from typing import Any


def rss_mb() -> float:
    """Current resident set size of this process, in MB (Linux /proc, else peak)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB on Linux
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def device_memory_mb() -> dict[str, float] | None:
    """Memory in use and its peak on the first accelerator, in MB; None on CPU.

    TensorFlow: `tf.config.experimental.get_memory_info`; PyTorch:
    `torch.cuda.memory_allocated`; JAX: `Device.memory_stats()`.
    """
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            if not tf.config.list_logical_devices("GPU"):
                return None
            info = tf.config.experimental.get_memory_info("GPU:0")
            return {"current": info["current"] / 1e6, "peak": info["peak"] / 1e6}
        if backend == "torch":
            import torch

            if not torch.cuda.is_available():
                return None
            return {"current": torch.cuda.memory_allocated() / 1e6,
                    "peak": torch.cuda.max_memory_allocated() / 1e6}
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "cpu":
                return None
            stats = device.memory_stats() or {}
            return {"current": stats.get("bytes_in_use", 0) / 1e6,
                    "peak": stats.get("peak_bytes_in_use", 0) / 1e6}
    except (RuntimeError, ValueError, AttributeError):
        return None
    return None


def reset_device_peak() -> None:
    """Start a new peak for device memory (each segment reports its own)."""
    import keras

    try:
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            if tf.config.list_logical_devices("GPU"):
                tf.config.experimental.reset_memory_stats("GPU:0")
        elif keras.backend.backend() == "torch":
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
    except (RuntimeError, ValueError, AttributeError):
        pass


def epoch_record(epoch: int, segment: int, seconds: float, steps: int, samples: int | None,
                 logs: dict[str, Any]) -> dict[str, Any]:
    """One line of epochs.jsonl."""
    device = device_memory_mb()
    return {
        "epoch": epoch,
        "segment": segment,
        "seconds": seconds,
        "steps": steps,
        "samples_per_second": (samples / seconds) if samples and seconds > 0 else None,
        "rss_mb": rss_mb(),
        "device_mb": None if device is None else device["current"],
        "device_peak_mb": None if device is None else device["peak"],
        "pid": os.getpid(),
        "logs": {k: float(v) for k, v in (logs or {}).items() if _is_number(v)},
    }


def _is_number(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False

"""Measurements of the running process: resident memory, device memory, and each epoch's record."""

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
    """Memory in use and its peak on the first accelerator, in MB; None on CPU (see `Backend.device_memory_mb`)."""
    from segtrain import backends

    return backends.current().device_memory_mb()


def reset_device_peak() -> None:
    """Start a new peak for device memory (each segment reports its own)."""
    from segtrain import backends

    backends.current().reset_device_peak()


def epoch_record(
    epoch: int, segment: int, seconds: float, steps: int, samples: int | None, logs: dict[str, Any]
) -> dict[str, Any]:
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

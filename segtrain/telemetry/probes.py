"""Measurements of processes: resident memory, device memory, CPU time, and each epoch's record.

What only Linux offers (/proc) is read here and nowhere else; elsewhere each
probe degrades to what `resource` gives, or to None.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any

from segtrain import backends


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
    return backends.current().device_memory_mb()


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds that process `pid` has used so far (all its threads); None where unknown.

    Reads /proc/PID/stat (Linux), so it works on any process this user may see,
    a child not yet reaped included; None elsewhere or once the process is gone.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        # The command name (field 2) may hold spaces and parentheses: count fields from its closing one.
        fields = stat[stat.rindex(b")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)
    except (OSError, ValueError, IndexError):
        return None


class CpuMeter:
    """The CPU seconds another process uses between marks: a waiting worker's, epoch by epoch."""

    def __init__(self, pid: int):
        self.pid = pid
        self.last = cpu_seconds(pid) or 0.0
        self.used: list[float] = []  # CPU seconds between the start (or the previous mark) and each mark

    def mark(self) -> None:
        """Note the CPU seconds used since the previous mark (0 once the process is gone)."""
        now = cpu_seconds(self.pid)
        if now is None:
            self.used.append(0.0)
            return
        self.used.append(max(0.0, now - self.last))
        self.last = now


def reset_device_peak() -> None:
    """Start a new peak for device memory (each segment reports its own)."""
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

"""One definition of each figure derived from a run's timings: typical epoch, retrace, slowdown, boundary cost.

Everything that shows or acts on these figures (the report, the status, the
progress bar, the plot, `--segment auto`) calls these functions; none computes
them itself. docs/telemetry.md states the same definitions for users.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def typical_seconds(seconds: Sequence[float]) -> float:
    """Seconds per epoch of a segment: the median of its epochs, leaving out the first (tracing) when it has others."""
    rest = list(seconds[1:]) if len(seconds) > 1 else list(seconds)
    return statistics.median(rest) if rest else 0.0


def retrace_seconds(seconds: Sequence[float]) -> float:
    """What a segment's first epoch took above its typical epoch: the re-trace a boundary makes the next one pay.

    0 for a segment of one epoch, which has nothing to compare its first epoch with.
    """
    if len(seconds) < 2:
        return 0.0
    return max(0.0, seconds[0] - typical_seconds(seconds))


def ratio(value: float | None, base: float | None) -> float | None:
    """`value / base`, or None where either is unknown or the base is 0."""
    if value is None or not base:
        return None
    return value / base


def slowdown(seconds_per_epoch: float, first_segment_seconds_per_epoch: float | None) -> float:
    """Slowdown of a segment: its seconds per epoch over the run's first segment's (1.0 while unknown)."""
    return ratio(seconds_per_epoch, first_segment_seconds_per_epoch) or 1.0


@dataclass(frozen=True)
class BoundaryCost:
    """What a segment paid besides training: the start of its process (or the session clear), its load, its saves."""

    start_seconds: float = 0.0  # a new worker's start, or the wait for a pre-started one
    clear_seconds: float = 0.0  # session isolation: `clear_session()` and a collection
    load_seconds: float = 0.0
    save_seconds: float = 0.0

    @property
    def start_or_clear_seconds(self) -> float:
        """What the isolation cost: a process start (or the wait for a pre-started one), or a session clear."""
        return self.start_seconds + self.clear_seconds

    @property
    def setup_seconds(self) -> float:
        """Start or clear, and load: the part an unsegmented run pays once, too."""
        return self.start_or_clear_seconds + self.load_seconds

    @property
    def total(self) -> float:
        """The boundary's whole cost: setup and saves (`boundary_seconds` in segments.jsonl and the report)."""
        return self.setup_seconds + self.save_seconds

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> BoundaryCost:
        """From a line of segments.jsonl (absent fields count as 0)."""
        return cls(
            *(float(rec.get(k) or 0.0) for k in ("start_seconds", "clear_seconds", "load_seconds", "save_seconds"))
        )

"""Where a segment ends: every S epochs, or where measurement says a boundary pays off.

With `--segment auto` a boundary falls when the time lost to slowdown since the
last one — the sum, over the segment's epochs, of each epoch's seconds above
the segment's baseline — exceeds what a boundary costs. A clean job then sees
few boundaries and a leaking one as many as pay off. The sum is a CUSUM (Page's
change detector): an epoch faster than the baseline takes its margin back off
the sum, which never falls below zero, so the noise of a busy machine cancels
out instead of adding up to a boundary, while a steady slowdown grows it.

What a boundary costs is more than its save, start and load: the first epoch
after it traces the train step again (a new process, or a reloaded model).
The segment's own first epoch shows that price — its seconds above the
baseline — and the next segment will pay it again, so it counts too. So does
the time a segment's epochs lose beside the next segment's pre-started worker
where cores are short (`estimate_spare_cost`, from the run's segments so far).

With `--max-memory`, a boundary also falls as soon as memory (device memory
where it is measured, else the process's RSS) exceeds the limit, whatever the
segment length.

The baseline is the median of the segment's first clean epochs (its very first
epoch includes tracing and is left out); only time above `tolerance` over the
baseline counts as lost.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from segtrain.options import AUTO
from segtrain.telemetry.figures import BoundaryCost, SegmentCost, retrace_seconds, run_clean_seconds, typical_seconds
from segtrain.training.records import Segment


def next_segment(epochs_done: int, total: int, length: int | str, index: int) -> Segment:
    """The segment that starts at `epochs_done`.

    Fixed boundaries fall on multiples of `length`; with `"auto"` the segment may
    run to the end and `BoundaryPolicy` ends it, and `index` numbers it.
    """
    if length == AUTO or isinstance(length, str):
        return Segment(index, epochs_done, total)
    fixed = epochs_done // length
    return Segment(fixed, epochs_done, min(total, (fixed + 1) * length))


@dataclass
class BoundaryPolicy:
    """Decides after each epoch whether the segment should end there.

    Args:
        auto: place boundaries from measurement (`--segment auto`).
        boundary_cost: expected seconds of one boundary's save, new process or
            clear, and load (`estimate_cost`); `None` never ends a segment on
            time. The re-trace after it is measured on this segment's first epoch.
        max_memory_mb: end the segment when memory exceeds this (`--max-memory`).
        spare_cost: epoch seconds a segment loses beside the next one's pre-started worker
            (`estimate_spare_cost`): part of what a boundary costs.
        baseline_epochs: clean epochs whose median is the baseline. Defaults to 3.
        tolerance: fraction above the baseline that counts as noise. Defaults to 0.02.
    """

    auto: bool
    boundary_cost: float | None = None
    max_memory_mb: float | None = None
    spare_cost: float = 0.0
    baseline_epochs: int = 3
    tolerance: float = 0.02
    seconds: list[float] = field(default_factory=list)
    excess: float = 0.0

    @property
    def _opening(self) -> list[float]:
        """The segment's first epoch and the clean epochs after it that make the baseline."""
        return self.seconds[: 1 + self.baseline_epochs]

    @property
    def baseline(self) -> float | None:
        """The segment's typical epoch (`figures.typical_seconds`) over its opening epochs."""
        clean = len(self._opening) - 1
        return typical_seconds(self._opening) if clean >= min(2, self.baseline_epochs) else None

    @property
    def retrace(self) -> float:
        """Seconds the segment's first epoch took above the baseline (`figures.retrace_seconds`)."""
        return retrace_seconds(self._opening) if self.baseline is not None else 0.0

    def observe(self, seconds: float, rss_mb: float | None = None, device_mb: float | None = None) -> str | None:
        """Record an epoch; return why the segment should end after it, or None to go on."""
        self.seconds.append(seconds)
        memory, kind = (device_mb, "device memory") if device_mb is not None else (rss_mb, "RSS")
        if self.max_memory_mb is not None and memory is not None and memory > self.max_memory_mb:
            return f"{kind} {memory:.0f} MB exceeds --max-memory {self.max_memory_mb:.0f} MB"
        if not self.auto or self.boundary_cost is None:
            return None
        baseline = self.baseline
        if baseline is None or len(self.seconds) <= 1 + self.baseline_epochs:
            return None
        self.excess = max(0.0, self.excess + seconds - baseline * (1 + self.tolerance))
        cost = self.boundary_cost + self.retrace + self.spare_cost
        if self.excess > cost:
            spare = f" + {self.spare_cost:.1f} s beside the pre-started worker" if self.spare_cost else ""
            return (
                f"{self.excess:.1f} s lost to slowdown since the segment began exceeds a boundary's "
                f"{cost:.1f} s ({self.boundary_cost:.1f} s save, start and load + {self.retrace:.1f} s re-trace"
                f"{spare})"
            )
        return None


def estimate_cost(records: list[dict[str, Any]], load_seconds: float = 0.0, cold_start_seconds: float = 0.0) -> float:
    """Expected seconds of the next boundary's start, load and save: the median of those measured so far.

    Before any boundary has been measured, this segment's own load stands in
    (twice, for the save to come), plus its own start where the next segment
    will start as cold (a new process without a pre-started worker); a
    pre-started worker is ready at the boundary, and its start costs nothing.
    """
    measured = [BoundaryCost.from_record(r).total for r in records if r.get("index", 0) > 0]
    measured = [m for m in measured if m > 0]
    if measured:
        return statistics.median(measured)
    return cold_start_seconds + 2 * load_seconds


def estimate_spare_cost(records: list[dict[str, Any]]) -> float:
    """Expected epoch seconds a segment loses beside the next one's pre-started worker: the median of what the
    segments that ran beside one lost (`figures.SegmentCost.spare_lost_seconds`); 0 before any did."""
    run_clean = run_clean_seconds((r.get("epoch_seconds") or [], r.get("spare_cpu_seconds")) for r in records)
    lost = [SegmentCost.from_record(r, run_clean).spare_lost_seconds for r in records if r.get("spare_cpu_seconds")]
    return statistics.median(lost) if lost else 0.0

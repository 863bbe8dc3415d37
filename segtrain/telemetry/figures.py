"""One definition of each figure derived from a run's timings: typical epoch, retrace, slowdown, boundary cost,
the time lost beside a pre-started worker, and what segmenting cost a run in all.

Everything that shows or acts on these figures (the report, the status, the
progress bar, the plot, `--segment auto`) calls these functions; none computes
them itself. docs/telemetry.md states the same definitions for users.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: A spare (the next segment's pre-started worker) is busy during an epoch where it used at least this share of
#: the epoch's seconds in CPU, and at least SPARE_BUSY_CPU_SECONDS (two ticks of the kernel's CPU accounting):
#: a spare that waits for its turn uses none.
SPARE_BUSY_FRACTION = 0.02
SPARE_BUSY_CPU_SECONDS = 0.02
#: Clean epochs a segment needs for a pace of its own; with fewer, the run's clean epochs together give it.
MIN_CLEAN_EPOCHS = 3


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


def spare_busy(epoch_seconds: float, spare_cpu_seconds: float) -> bool:
    """Whether an epoch ran beside a busy spare: it used a share of the CPU (`SPARE_BUSY_FRACTION`) meanwhile."""
    return spare_cpu_seconds >= max(SPARE_BUSY_CPU_SECONDS, SPARE_BUSY_FRACTION * epoch_seconds)


def _busy_flags(seconds: Sequence[float], spare_cpu: Sequence[float] | None) -> list[bool]:
    """Per epoch, whether a spare was busy beside it (an epoch the spare's record does not cover: not)."""
    cpu = list(spare_cpu or [])
    return [i < len(cpu) and spare_busy(s, cpu[i]) for i, s in enumerate(seconds)]


def clean_seconds(seconds: Sequence[float], spare_cpu: Sequence[float] | None) -> list[float]:
    """A segment's epochs that no busy spare ran beside, its first (tracing) left out: its pace without one."""
    busy = _busy_flags(seconds, spare_cpu)
    return [s for i, s in enumerate(seconds) if i > 0 and not busy[i]]


def clean_pace(
    seconds: Sequence[float], spare_cpu: Sequence[float] | None, run_clean: Sequence[float] = ()
) -> float | None:
    """Seconds per epoch without a busy spare: the mean of the segment's clean epochs where it has
    `MIN_CLEAN_EPOCHS`, else of the run's (`run_clean`: every segment's `clean_seconds`), else of the few it has;
    None where no epoch anywhere was clean.

    The mean, not the median that `typical_seconds` takes: what the busy epochs are held against is a sum of
    seconds, and epoch times are skewed (a slow epoch now and then, never a much faster one), so a median pace
    would count that skew of the busy epochs as lost beside the spare.
    """
    own = clean_seconds(seconds, spare_cpu)
    for pool in (own if len(own) >= MIN_CLEAN_EPOCHS else [], run_clean, own):
        if pool:
            return statistics.fmean(pool)
    return None


def spare_busy_epochs(seconds: Sequence[float], spare_cpu: Sequence[float] | None) -> int:
    """How many of a segment's epochs ran beside a busy spare."""
    return sum(_busy_flags(seconds, spare_cpu))


def spare_lost_seconds(seconds: Sequence[float], spare_cpu: Sequence[float] | None, pace: float | None) -> float | None:
    """Epoch time a segment lost beside a busy spare: over the epochs it was busy beside, their seconds above the
    clean `pace` (`clean_pace`), summed, so that faster epochs take theirs back; at least 0.

    The first epoch counts up to the segment's typical epoch only: what it took above that is the re-trace
    (`retrace_seconds`), counted apart. 0 where no spare was busy; None where one was, but no epoch of the
    run ran without one, so there is no pace to hold them against.
    """
    busy = _busy_flags(seconds, spare_cpu)
    if not any(busy):
        return 0.0
    if pace is None:
        return None
    typical = typical_seconds(seconds)
    lost = sum((min(s, typical) if i == 0 else s) - pace for i, s in enumerate(seconds) if busy[i])
    return max(0.0, lost)


def other_seconds(wall_seconds: float | None, train_seconds: float, boundary: BoundaryCost) -> float:
    """A segment's wall seconds outside its boundary and its training: its worker's exit, the next worker's
    spawn, the parent's messages. 0 where its wall time was not recorded (a running or crashed attempt)."""
    return 0.0 if wall_seconds is None else max(0.0, wall_seconds - train_seconds - boundary.total)


@dataclass(frozen=True)
class SegmentCost:
    """What one segment cost besides training: its boundary, the retrace of its first epoch, and its spare."""

    boundary: BoundaryCost  # start or clear, load, and saves
    train_seconds: float
    retrace_seconds: float  # `retrace_seconds` of its epochs
    spare_lost_seconds: float = 0.0  # `spare_lost_seconds`: its epochs' time lost beside the next worker
    prestart_cpu_seconds: float = 0.0  # CPU its own worker used before its turn, while the previous segment trained
    spare_busy_epochs: int = 0
    other_seconds: float = 0.0  # `other_seconds`: its wall time outside boundary and training

    @classmethod
    def from_record(cls, rec: Mapping[str, Any], run_clean: Sequence[float] = ()) -> SegmentCost:
        """From a line of segments.jsonl; `run_clean`: the run's clean epochs, where the report knows them."""
        seconds = [float(s) for s in rec.get("epoch_seconds") or [] if s is not None]
        spare = rec.get("spare_cpu_seconds")
        boundary, train = BoundaryCost.from_record(rec), float(rec.get("train_seconds") or 0.0)
        return cls(
            boundary,
            train,
            retrace_seconds(seconds),
            spare_lost_seconds(seconds, spare, clean_pace(seconds, spare, run_clean)) or 0.0,
            float(rec.get("prestart_cpu_seconds") or 0.0),
            spare_busy_epochs(seconds, spare),
            other_seconds(rec.get("wall_seconds"), train, boundary),
        )


@dataclass(frozen=True)
class SegmentingCost:
    """What segmenting cost a run beyond what one unsegmented `fit` pays, as measured.

    Wall seconds (`seconds`): every boundary's start (or clear) and load after the first segment's, and every
    save; every re-trace and every segment's other wall time (`other_seconds`) after the first segment's; and
    the epoch time lost beside the pre-started workers.
    Apart, in CPU seconds: what the pre-started workers used while the previous segment trained. It is not
    wall time: on idle cores it costs none, and where cores are short it shows as `spare_lost_seconds`.
    """

    seconds: float
    boundaries_seconds: float
    retrace_seconds: float
    other_seconds: float
    spare_lost_seconds: float
    spare_busy_epochs: int
    prestart_cpu_seconds: float
    train_seconds: float  # the segments' `train_seconds`, the base of `fraction`

    @classmethod
    def of(cls, costs: Sequence[SegmentCost]) -> SegmentingCost:
        """From the run's segments in order (the first segment's setup and trace are not segmenting's)."""
        if not costs:
            return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0)
        boundaries = sum(c.boundary.total for c in costs[1:]) + costs[0].boundary.save_seconds
        retrace = sum(c.retrace_seconds for c in costs[1:])
        other = sum(c.other_seconds for c in costs[1:])
        lost = sum(c.spare_lost_seconds for c in costs)
        return cls(
            seconds=boundaries + retrace + other + lost,
            boundaries_seconds=boundaries,
            retrace_seconds=retrace,
            other_seconds=other,
            spare_lost_seconds=lost,
            spare_busy_epochs=sum(c.spare_busy_epochs for c in costs),
            prestart_cpu_seconds=sum(c.prestart_cpu_seconds for c in costs),
            train_seconds=sum(c.train_seconds for c in costs),
        )

    @property
    def fraction(self) -> float | None:
        """`seconds` over the training time (`boundary_overhead` in the report); None before any training."""
        return ratio(self.seconds, self.train_seconds)


def run_clean_seconds(segments: Iterable[tuple[Sequence[float], Sequence[float] | None]]) -> list[float]:
    """The clean epochs (`clean_seconds`) of every segment of a run, from (epoch seconds, spare CPU) pairs."""
    return [s for seconds, spare in segments for s in clean_seconds(seconds, spare)]

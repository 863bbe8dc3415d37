"""Is segmenting working? Pure functions that spot what users come to segtrain for.

Three findings, each saying where and by how much:

* a steady climb of seconds per epoch within a segment (the leak that makes a
  long job slower and slower, which a shorter `--segment` cuts off);
* a steady climb of memory (RSS, or device memory) within a segment;
* boundaries (save, clear or process start, load, and the retracing of the
  next segment's first epoch) costing more than a few percent of training
  time, which a longer `--segment` amortizes.

"Steady" is decided robustly, so that one slow epoch (a GC pause, a noisy
neighbour) is not a trend: the Theil–Sen line (median of pairwise slopes)
must rise by a given ratio, and Kendall's tau (the share of epoch pairs that
are in increasing order, minus those that are not) must be high. Nothing here
reads files or prints: the report calls these on a finished run, the progress
bar on a running one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from segtrain.options import Choice
from segtrain.telemetry.figures import SegmentCost, SegmentingCost

_MAX_POINTS = 200  # pairwise statistics are O(n²): thin longer series evenly


@dataclass(frozen=True)
class Thresholds:
    """When a finding is worth a warning. Defaults suit runs of minutes to weeks."""

    min_points: int = 5  # epochs (after the segment's first) before a climb can be called steady
    min_tau: float = 0.6  # Kendall's tau of value against epoch
    time_ratio: float = 1.15  # seconds per epoch: fitted end / fitted start
    memory_ratio: float = 1.05  # memory: fitted end / fitted start
    memory_mb: float = 20.0  # ... and at least this many MB, so allocator jitter is not a leak
    boundary_fraction: float = 0.05  # boundary cost / training time


DEFAULT = Thresholds()


class FindingKind(Choice):
    """What a finding is about. A `Choice`: equal to, and serialised as, its value."""

    TIME_CLIMB = "time_climb"  # seconds per epoch climbing within a segment
    RSS_CLIMB = "rss_climb"  # RSS climbing within a segment
    DEVICE_CLIMB = "device_climb"  # device memory climbing within a segment
    BOUNDARY_COST = "boundary_cost"  # boundaries costing too much of training time


@dataclass(frozen=True)
class Finding:
    """One thing worth telling the user; `message` says it in a sentence."""

    kind: FindingKind
    segment: int | None  # 0-based index of the segment it happened in (None: the whole run)
    start_epoch: int | None  # 0-based first epoch of the climb
    end_epoch: int | None  # exclusive
    before: float  # fitted value at the start (s, MB) or boundary seconds
    after: float  # fitted value at the end (s, MB) or training seconds
    ratio: float  # after / before for climbs; boundary / training for boundary cost
    message: str

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}


@dataclass(frozen=True)
class Climb:
    """A steady rise: the fitted line's start and end, and how orderly the rise is."""

    start: float
    end: float
    tau: float

    @property
    def ratio(self) -> float:
        return self.end / self.start if self.start > 0 else math.inf

    def finding(self, kind: FindingKind, segment: int, first: int, end: int, message: str) -> Finding:
        """This climb, within `segment`'s epochs [first, end), as a finding that says `message`."""
        return Finding(kind, segment, first, end, self.start, self.end, self.ratio, message)


def steady_climb(
    values: Sequence[float | None],
    min_points: int = DEFAULT.min_points,
    min_tau: float = DEFAULT.min_tau,
    min_ratio: float = 1.0,
) -> Climb | None:
    """The climb of `values` (one per epoch) if it is steady and rises by `min_ratio`, else None."""
    ys = [float(v) for v in values if v is not None and math.isfinite(v)]
    if len(ys) < max(min_points, 3):
        return None
    xs = list(range(len(ys)))
    if len(ys) > _MAX_POINTS:
        step = len(ys) / _MAX_POINTS
        xs = [int(i * step) for i in range(_MAX_POINTS)]
        ys = [ys[i] for i in xs]
    slope, tau = _theil_sen_kendall(xs, ys)
    if slope <= 0 or tau < min_tau:
        return None
    intercept = statistics.median(y - slope * x for x, y in zip(xs, ys, strict=True))
    climb = Climb(intercept + slope * xs[0], intercept + slope * xs[-1], tau)
    return climb if climb.ratio >= min_ratio else None


def _theil_sen_kendall(xs: Sequence[int], ys: Sequence[float]) -> tuple[float, float]:
    """Median pairwise slope and Kendall's tau-a, in one pass over the pairs."""
    slopes, score, pairs = [], 0, 0
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            dy = ys[j] - ys[i]
            slopes.append(dy / (xs[j] - xs[i]))
            score += (dy > 0) - (dy < 0)
            pairs += 1
    return statistics.median(slopes), score / pairs


def time_climb(seconds: Sequence[float], segment: int, start_epoch: int, th: Thresholds = DEFAULT) -> Finding | None:
    """Seconds per epoch rising steadily within one segment.

    `seconds` are the segment's epochs in order from `start_epoch`; the first
    is left out, as it includes tracing.
    """
    rest = list(seconds[1:])
    climb = steady_climb(rest, th.min_points, th.min_tau, th.time_ratio)
    if climb is None:
        return None
    first, end = start_epoch + 1, start_epoch + len(seconds)
    return climb.finding(
        FindingKind.TIME_CLIMB,
        segment,
        first,
        end,
        f"Seconds per epoch climbed {_percent(climb.ratio)} within segment {segment + 1} "
        f"(epochs {first + 1}–{end}: {climb.start:.3g} → {climb.end:.3g} s). Something grows as "
        "training goes (a leak, a growing graph or dataset cache); a shorter --segment resets it sooner.",
    )


def memory_climb(
    mb: Sequence[float | None], segment: int, start_epoch: int, kind: str = "rss", th: Thresholds = DEFAULT
) -> Finding | None:
    """Memory (`kind` "rss" or "device", MB per epoch) rising steadily within one segment.

    The first epoch is left out: it allocates the graph and the optimizer state.
    """
    rest = list(mb[1:])
    climb = steady_climb(rest, th.min_points, th.min_tau, th.memory_ratio)
    if climb is None or climb.end - climb.start < th.memory_mb:
        return None
    first, end = start_epoch + 1, start_epoch + len(mb)
    what = "RSS" if kind == "rss" else "Device memory"
    per_epoch = (climb.end - climb.start) / max(1, len(rest) - 1)
    return climb.finding(
        FindingKind.RSS_CLIMB if kind == "rss" else FindingKind.DEVICE_CLIMB,
        segment,
        first,
        end,
        f"{what} climbed {_percent(climb.ratio)} within segment {segment + 1} (epochs {first + 1}–{end}: "
        f"{climb.start:.0f} → {climb.end:.0f} MB, {per_epoch:.1f} MB per epoch). If it keeps growing, "
        "a shorter --segment bounds it.",
    )


def boundary_overhead(costs: Sequence[SegmentCost]) -> tuple[float, float]:
    """(seconds segmenting cost, seconds of training) over a run's segments in order: `figures.SegmentingCost`.

    The first segment's setup and tracing are left out: training without
    segments pays them too. Every later segment's start (or clear), load and
    retracing, every save, and the epoch time lost beside pre-started workers
    are the price of segmenting.
    """
    cost = SegmentingCost.of(costs)
    return cost.seconds, cost.train_seconds


def boundary_cost(
    costs: Sequence[SegmentCost], segment_length: int, epochs_total: int | None = None, th: Thresholds = DEFAULT
) -> Finding | None:
    """Boundaries costing more than `th.boundary_fraction` of training time, with a longer --segment to try."""
    if len(costs) < 2:
        return None
    overhead, train = boundary_overhead(costs)
    if train <= 0 or overhead / train <= th.boundary_fraction:
        return None
    fraction = overhead / train
    suggested = math.ceil(segment_length * fraction / (th.boundary_fraction / 2))
    if epochs_total:
        suggested = min(suggested, epochs_total)
    hint = (
        f"try --segment {suggested} (it trades some of the reset that segments buy)"
        if suggested > segment_length
        else "a longer --segment would amortize them"
    )
    return Finding(
        FindingKind.BOUNDARY_COST,
        None,
        None,
        None,
        overhead,
        train,
        fraction,
        f"Boundaries cost {fraction:.0%} of training time ({overhead:.1f} s over {len(costs) - 1} "
        f"boundar{'y' if len(costs) == 2 else 'ies'} against {train:.1f} s of training); {hint}.",
    )


def segment_findings(
    seconds: Sequence[float],
    rss_mb: Sequence[float | None],
    device_mb: Sequence[float | None],
    segment: int,
    start_epoch: int,
    th: Thresholds = DEFAULT,
) -> list[Finding]:
    """Every climb within one segment, from its per-epoch series."""
    found = [
        time_climb(seconds, segment, start_epoch, th),
        memory_climb(rss_mb, segment, start_epoch, "rss", th),
        memory_climb(device_mb, segment, start_epoch, "device", th),
    ]
    return [f for f in found if f is not None]


def _percent(ratio: float) -> str:
    return "without bound" if math.isinf(ratio) else f"{(ratio - 1) * 100:.0f}%"

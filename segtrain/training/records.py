"""What the segment loop asks of training, and what training answers: a `Segment` and its `SegmentResult`.

Both cross the process boundary (see `segtrain.worker.protocol`) and end up in
segments.jsonl, so they are plain dataclasses of JSON-ready values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from segtrain.outcomes import SegmentOutcome

# Receives each epoch's line of epochs.jsonl; returns why the run should stop there (a sweep's pruner), or None.
OnEpoch = Callable[[dict[str, Any]], "str | None"]


@dataclass(frozen=True)
class Segment:
    """Epochs [start_epoch, end_epoch) of a run (0-based, like Keras' `initial_epoch`)."""

    index: int
    start_epoch: int
    end_epoch: int


@dataclass
class SegmentResult:
    """What a segment did; one line of segments.jsonl once the runner adds its own timings."""

    index: int
    start_epoch: int
    end_epoch: int  # epochs completed when the segment ended
    outcome: SegmentOutcome
    stop_reason: str | None = None
    pruned: bool = False  # the job's hook (a sweep's pruner) stopped it, not the script's callbacks
    train_seconds: float = 0.0
    load_seconds: float = 0.0
    save_seconds: float = 0.0
    first_epoch_seconds: float | None = None
    epoch_seconds: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    peak_device_mb: float | None = None
    final_logs: dict[str, float] = field(default_factory=dict)
    boundary_reason: str | None = None  # why the segment ended before its planned end
    checkpoint: str | None = None  # the newest checkpoint this segment wrote
    resumed_from: str | None = None  # the checkpoint it started from
    replicas: int = 1  # devices that trained it in parallel (--distribute data-parallel)

    def __post_init__(self) -> None:
        self.outcome = SegmentOutcome(self.outcome)

    @classmethod
    def not_started(cls, segment: Segment, *, signal: str | None = None, lost: str | None = None) -> SegmentResult:
        """A segment stopped before it trained anything: by the stop signal named `signal`, or (many hosts) the
        loss of another process, `lost` saying what the others saw. Its `stop_reason` is whichever was given."""
        reason = signal if lost is None else lost
        return cls(segment.index, segment.start_epoch, segment.start_epoch, SegmentOutcome.PREEMPTED, reason)

    @property
    def trained_nothing(self) -> bool:
        return self.end_epoch == self.start_epoch and self.checkpoint is None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

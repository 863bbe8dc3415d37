"""What a run did, per segment: the report's data model, built from the run directory's logs alone.

Reading the logs is `segtrain.telemetry.logs`, showing the report
`segtrain.telemetry.render`, its JSON Schema `segtrain.telemetry.schema`,
and every derived figure (seconds per epoch, retrace, slowdown, boundary
cost) is defined once, in `segtrain.telemetry.figures` (docs/telemetry.md
states the same definitions for users).

A segment row is one uninterrupted attempt of a segment: a segment stopped by
a signal and resumed has two rows. An attempt with no line in segments.jsonl
is `running` (the newest, while a live process holds the run) or `crashed`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from segtrain.errors import ConfigError
from segtrain.outcomes import RunStatus, SegmentOutcome
from segtrain.state.manifest import RunManifest
from segtrain.telemetry.figures import (
    BoundaryCost,
    SegmentCost,
    SegmentingCost,
    clean_pace,
    other_seconds,
    ratio,
    retrace_seconds,
    run_clean_seconds,
    slowdown,
    spare_busy_epochs,
    spare_lost_seconds,
    typical_seconds,
)
from segtrain.telemetry.logs import EpochRecord, RunLogs, attempts, load, segment_record
from segtrain.telemetry.trends import Finding, boundary_cost, segment_findings


@dataclass
class SegmentRow:
    """One uninterrupted attempt of a segment: a row of the report."""

    index: int  # 0-based segment index (a segment stopped by a signal and resumed has two rows)
    start_epoch: int  # 0-based, like Keras' initial_epoch
    end_epoch: int  # exclusive
    epochs: int
    outcome: SegmentOutcome  # RUNNING or CRASHED for an attempt with no line in segments.jsonl
    stop_reason: str | None
    isolation: str
    replicas: int | None  # devices that trained it in parallel (--distribute); None: running, crashed or older runs
    pid: int | None
    seconds: float  # wall seconds, boundary included (a running or crashed attempt: its epochs' sum)
    train_seconds: float
    seconds_per_epoch: float  # figures.typical_seconds
    first_epoch_seconds: float
    retrace_seconds: float  # figures.retrace_seconds
    slowdown: float  # figures.slowdown against the first row
    samples_per_second: float | None
    peak_rss_mb: float | None
    last_rss_mb: float | None
    memory_growth: float | None
    peak_device_mb: float | None
    device_growth: float | None
    boundary_seconds: float | None  # figures.BoundaryCost.total; None: not recorded (running or crashed)
    start_seconds: float | None  # None: not recorded, or not how this segment began (session isolation)
    clear_seconds: float | None
    load_seconds: float | None
    save_seconds: float | None
    # Process isolation with a pre-started worker (None where not recorded: session isolation, older runs):
    prestart_cpu_seconds: float | None  # CPU its worker used before its turn, while the previous segment trained
    spare_busy_epochs: int | None  # its epochs that ran beside the next segment's worker while that one was busy
    spare_lost_seconds: float | None  # figures.spare_lost_seconds: those epochs' seconds above the clean pace
    checkpoint: str | None
    final_logs: dict[str, float] = field(default_factory=dict)

    def boundary(self) -> BoundaryCost:
        """What the boundary before this segment cost (zeros where nothing was recorded)."""
        return BoundaryCost(
            self.start_seconds or 0.0, self.clear_seconds or 0.0, self.load_seconds or 0.0, self.save_seconds or 0.0
        )

    def cost(self) -> SegmentCost:
        return SegmentCost(
            self.boundary(),
            self.train_seconds,
            self.retrace_seconds,
            self.spare_lost_seconds or 0.0,
            self.prestart_cpu_seconds or 0.0,
            self.spare_busy_epochs or 0,
            other_seconds(
                self.seconds if self.boundary_seconds is not None else None, self.train_seconds, self.boundary()
            ),
        )


@dataclass
class Report:
    """A run from its logs: one row per attempt of a segment, totals, and what is worth a warning."""

    run_dir: str
    status: RunStatus  # the manifest's
    alive: bool
    epochs_total: int
    epochs_done: int  # epochs trained, per the logs (the newest attempt of each)
    segment_length: int | None  # None: `--segment auto`
    segments_planned: int
    isolation: str
    stop_reason: str | None
    seconds: float
    train_seconds: float
    boundary_seconds: float  # every row's boundary_seconds
    overhead_seconds: float  # what segmenting cost (figures.SegmentingCost): the four parts below
    boundary_overhead: float | None  # overhead_seconds / train_seconds
    overhead_boundary_seconds: float  # every start (or clear) and load but the first segment's, every save
    overhead_retrace_seconds: float  # every re-trace but the first segment's
    overhead_other_seconds: float  # every segment's wall time outside boundary and training but the first's
    overhead_spare_seconds: float  # epoch time lost beside busy pre-started workers
    spare_busy_epochs: int  # epochs that ran beside a busy pre-started worker
    prestart_cpu_seconds: float  # CPU (not wall) seconds the pre-started workers used while segments trained
    epochs_rerun: int
    segments: list[SegmentRow]
    findings: list[Finding]
    params: dict[str, Any]  # the run's params (`--param`, a sweep trial's, a fold's)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (see schema.JSON_SCHEMA): enums as their values, non-finite numbers as null."""
        return json_ready(asdict(self))


def json_ready(obj: Any) -> Any:
    """`obj` with enums replaced by their values and non-finite floats (a NaN loss) by None."""
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_ready(v) for v in obj]
    return obj


def build(run_dir: Path | str) -> Report:
    """The report of the run in `run_dir`, from its logs alone (raises ConfigError where it holds no run)."""
    return build_from(load(run_dir))


def build_from(logs: RunLogs) -> Report:
    """The report of logs already read (status and plot read once and share them)."""
    config, manifest = logs.config, logs.manifest
    groups = attempts(logs.epochs)
    rows = _rows(groups, logs)
    length = config.get("segment") if isinstance(config.get("segment"), int) else None  # None: "auto"
    total = int(config.get("epochs") or 0)
    typical = length or (max(1, round(rows[-1].end_epoch / len(rows))) if rows else 1)
    costs = [r.cost() for r in rows]
    cost = SegmentingCost.of(costs)
    status = manifest.status
    return Report(
        run_dir=str(logs.paths.root),
        status=status,
        alive=logs.alive,
        epochs_total=total,
        epochs_done=rows[-1].end_epoch if rows else manifest.epochs_done,
        segment_length=length,
        segments_planned=-(-total // length) if length else 0,
        isolation=config.get("isolation", ""),
        stop_reason=_stop_reason(status, manifest),
        seconds=sum(r.seconds for r in rows),
        train_seconds=sum(r.train_seconds for r in rows),
        boundary_seconds=sum(r.boundary_seconds or 0.0 for r in rows),
        overhead_seconds=cost.seconds,
        boundary_overhead=cost.fraction,
        overhead_boundary_seconds=cost.boundaries_seconds,
        overhead_retrace_seconds=cost.retrace_seconds,
        overhead_other_seconds=cost.other_seconds,
        overhead_spare_seconds=cost.spare_lost_seconds,
        spare_busy_epochs=cost.spare_busy_epochs,
        prestart_cpu_seconds=cost.prestart_cpu_seconds,
        epochs_rerun=logs.epochs_rerun,
        segments=rows,
        findings=_findings(groups, rows, costs, typical, total),
        params=dict(config.get("params") or {}),
    )


def _outcome(rec: dict[str, Any] | None, unrecorded: SegmentOutcome) -> SegmentOutcome:
    """How the attempt ended: its line of segments.jsonl says, or `unrecorded` where it has none."""
    if rec is None:
        return unrecorded
    value = rec.get("outcome")
    try:
        return SegmentOutcome(value)
    except ValueError:
        raise ConfigError(
            f"segments.jsonl records an unknown outcome {value!r} for segment {rec.get('index')}: "
            "it is not a log that this version of segtrain wrote."
        ) from None


def _rows(groups: list[list[EpochRecord]], logs: RunLogs) -> list[SegmentRow]:
    """A row per attempt; one without a segments.jsonl line is running (the last, if alive) or crashed."""
    records = [segment_record(group, logs.segment_records) for group in groups]
    spares = [_spare_cpu(group, rec) for group, rec in zip(groups, records, strict=True)]
    run_clean = run_clean_seconds(([e.seconds for e in g], spare) for g, spare in zip(groups, spares, strict=True))
    rows = []
    for i, (group, rec, spare) in enumerate(zip(groups, records, spares, strict=True)):
        unrecorded = SegmentOutcome.RUNNING if logs.alive and i == len(groups) - 1 else SegmentOutcome.CRASHED
        row = _row(group, rec, unrecorded, logs.config.get("isolation", ""))
        if spare is not None:
            seconds = [e.seconds for e in group]
            row.spare_busy_epochs = spare_busy_epochs(seconds, spare)
            row.spare_lost_seconds = spare_lost_seconds(seconds, spare, clean_pace(seconds, spare, run_clean))
        rows.append(row)
    _relative_to_first(rows)
    return rows


def _spare_cpu(group: list[EpochRecord], rec: dict[str, Any] | None) -> list[float] | None:
    """The attempt's per-epoch CPU of the spare beside it (None where not recorded: no spare, or an older run)."""
    spare = (rec or {}).get("spare_cpu_seconds")
    if not isinstance(spare, list):
        return None
    return [float(v or 0.0) for v in spare[: len(group)]]


def _findings(
    groups: list[list[EpochRecord]], rows: list[SegmentRow], costs: list[SegmentCost], length: int, total: int
) -> list[Finding]:
    found = [f for group, row in zip(groups, rows, strict=True) for f in _climbs(group, row)]
    overhead = boundary_cost(costs, length, total)
    return found + ([overhead] if overhead is not None else [])


def _stop_reason(status: RunStatus, manifest: RunManifest) -> str | None:
    """Why the run stopped; a reason left from an earlier invocation is not shown for a run going on."""
    if status is RunStatus.FAILED:
        return manifest.error or manifest.stop_reason
    return manifest.stop_reason if status.done or status is RunStatus.INTERRUPTED else None


def _row(
    group: list[EpochRecord], rec: dict[str, Any] | None, unrecorded: SegmentOutcome, isolation: str
) -> SegmentRow:
    seconds = [e.seconds for e in group]
    rss = [e.rss_mb for e in group if e.rss_mb is not None]
    device = [v for e in group for v in (e.device_mb, e.device_peak_mb) if v is not None]
    rates = [e.samples_per_second for e in group[1:] or group if e.samples_per_second]
    recorded = rec or {}
    boundary = BoundaryCost.from_record(recorded) if rec is not None else None
    return SegmentRow(
        index=group[0].segment,
        start_epoch=group[0].epoch,
        end_epoch=group[-1].epoch + 1,
        epochs=len(group),
        outcome=_outcome(rec, unrecorded),
        stop_reason=recorded.get("stop_reason"),
        isolation=recorded.get("isolation", isolation),
        replicas=recorded.get("replicas"),
        pid=group[0].pid if group[0].pid is not None else recorded.get("pid"),
        seconds=recorded.get("wall_seconds", sum(seconds)),
        train_seconds=recorded.get("train_seconds", sum(seconds)),
        seconds_per_epoch=typical_seconds(seconds),
        first_epoch_seconds=seconds[0],
        retrace_seconds=retrace_seconds(seconds),
        slowdown=1.0,
        samples_per_second=statistics.median(rates) if rates else None,
        peak_rss_mb=_max([*rss, recorded.get("peak_rss_mb") or None]),
        last_rss_mb=rss[-1] if rss else None,
        memory_growth=None,
        peak_device_mb=_max([*device, recorded.get("peak_device_mb")]),
        device_growth=None,
        boundary_seconds=boundary.total if boundary is not None else None,
        start_seconds=recorded.get("start_seconds"),
        clear_seconds=recorded.get("clear_seconds"),
        load_seconds=recorded.get("load_seconds"),
        save_seconds=recorded.get("save_seconds"),
        prestart_cpu_seconds=recorded.get("prestart_cpu_seconds"),
        spare_busy_epochs=None,
        spare_lost_seconds=None,
        checkpoint=recorded.get("checkpoint"),
        final_logs=dict(recorded.get("final_logs") or group[-1].logs),
    )


def _relative_to_first(rows: list[SegmentRow]) -> None:
    """Slowdown and memory growth: each row against the run's first segment."""
    if not rows:
        return
    base = rows[0]
    for row in rows:
        row.slowdown = slowdown(row.seconds_per_epoch, base.seconds_per_epoch)
        row.memory_growth = ratio(row.peak_rss_mb, base.peak_rss_mb)
        row.device_growth = ratio(row.peak_device_mb, base.peak_device_mb)


def _climbs(group: list[EpochRecord], row: SegmentRow) -> list[Finding]:
    return segment_findings(
        [e.seconds for e in group], [e.rss_mb for e in group], [e.device_mb for e in group], row.index, row.start_epoch
    )


def _max(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None

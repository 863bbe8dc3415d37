"""What a run did, per segment: built from the run directory alone, shown as a table or JSON.

It reads only the run's logs (never TensorFlow), so it is instant, and works
while the run trains, after it finished, and after it was killed.

Definitions (also in docs/telemetry.md):

* seconds per epoch of a segment: the median of its epochs' wall seconds,
  leaving out the segment's first epoch (which includes tracing) when it has
  others; the first epoch is reported on its own.
* slowdown of segment k: its seconds per epoch / segment 1's.
* memory growth of segment k: its peak RSS / segment 1's (device growth
  likewise, with peak device memory).
* boundary seconds of a segment: what the boundary before it cost, process
  start (or the wait for a pre-started worker) or the session clear, plus the
  load, plus the segment's saves.

A resumed run has repeated lines in its logs (epochs after the last
checkpoint ran again): each epoch is taken from its newest attempt, and a
segment row is one uninterrupted attempt of a segment, matched to its line of
segments.jsonl by segment index, first epoch and process id.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from segtrain.state import atomic
from segtrain.errors import ConfigError, SegtrainError
from segtrain.run.paths import RunPaths, is_locked, read_manifest
from segtrain.telemetry.trends import (Finding, SegmentCost, boundary_cost, boundary_overhead, segment_findings,
                             typical_seconds)

T = TypeVar("T")

#: Outcomes of a segment row: those of segments.jsonl, plus two for an attempt with no line there.
RUNNING, CRASHED = "running", "crashed"
DONE_OUTCOMES = ("boundary", "finished", "stopped")


@dataclass
class EpochRecord:
    """One line of epochs.jsonl."""

    epoch: int  # 0-based
    segment: int  # 0-based segment index
    seconds: float
    steps: int | None = None
    samples_per_second: float | None = None
    rss_mb: float | None = None
    device_mb: float | None = None
    device_peak_mb: float | None = None
    pid: int | None = None
    logs: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, rec: dict[str, Any]) -> "EpochRecord | None":
        """The record, or None for a line that lacks the fields every version writes."""
        try:
            return cls(int(rec["epoch"]), int(rec["segment"]), float(rec["seconds"]), rec.get("steps"),
                       rec.get("samples_per_second"), rec.get("rss_mb"), rec.get("device_mb"),
                       rec.get("device_peak_mb"), rec.get("pid"), dict(rec.get("logs") or {}))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class RunLogs:
    """A run directory's manifest and logs, with every repeated epoch reduced to its newest attempt."""

    paths: RunPaths
    manifest: dict[str, Any]
    epochs: list[EpochRecord]  # newest attempt of each epoch, in epoch order
    segment_records: list[dict[str, Any]]  # every line of segments.jsonl, oldest first
    epochs_rerun: int  # epoch lines superseded by a later attempt (work a crash cost)
    alive: bool  # a live process holds the run's lock

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest.get("config") or {}


@dataclass
class SegmentRow:
    """One uninterrupted attempt of a segment: a row of the report."""

    index: int  # 0-based segment index (a segment stopped by a signal and resumed has two rows)
    start_epoch: int  # 0-based, like Keras' initial_epoch
    end_epoch: int  # exclusive
    epochs: int
    outcome: str  # "boundary", "finished", "stopped", "preempted", "nan", "running", "crashed"
    stop_reason: str | None
    isolation: str
    pid: int | None
    seconds: float  # wall seconds, boundary included (a running or crashed attempt: its epochs' sum)
    train_seconds: float
    seconds_per_epoch: float
    first_epoch_seconds: float
    retrace_seconds: float  # first epoch's excess over seconds_per_epoch
    slowdown: float
    samples_per_second: float | None
    peak_rss_mb: float | None
    last_rss_mb: float | None
    memory_growth: float | None
    peak_device_mb: float | None
    device_growth: float | None
    boundary_seconds: float | None  # None: not recorded (running or crashed)
    start_seconds: float | None
    clear_seconds: float | None
    load_seconds: float | None
    save_seconds: float | None
    checkpoint: str | None
    final_logs: dict[str, float] = field(default_factory=dict)

    def cost(self) -> SegmentCost:
        setup = (self.start_seconds or 0.0) + (self.clear_seconds or 0.0) + (self.load_seconds or 0.0)
        return SegmentCost(self.boundary_seconds or 0.0, setup, self.train_seconds, self.retrace_seconds)


@dataclass
class Report:
    run_dir: str
    status: str  # the manifest's: "new", "running", "finished", "stopped", "interrupted", "failed"
    alive: bool
    epochs_total: int
    epochs_done: int  # epochs trained, per the logs (the newest attempt of each)
    segment_length: int | None
    segments_planned: int
    isolation: str
    stop_reason: str | None
    seconds: float
    train_seconds: float
    boundary_seconds: float  # every row's boundary_seconds
    overhead_seconds: float  # what segmenting cost: boundaries and retracing but the first setup
    boundary_overhead: float | None  # overhead_seconds / train_seconds (see trends.boundary_overhead)
    epochs_rerun: int
    segments: list[SegmentRow]
    findings: list[Finding]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite numbers, such as a NaN loss, become null)."""
        return _finite(asdict(self))


#: JSON Schema of `Report.to_json()`: `segtrain report --json` prints an object that validates.
_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_STR_OR_NULL = {"type": ["string", "null"]}
SEGMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["index", "start_epoch", "end_epoch", "epochs", "outcome", "seconds", "train_seconds",
                 "seconds_per_epoch", "first_epoch_seconds", "slowdown", "peak_rss_mb", "memory_growth",
                 "peak_device_mb", "boundary_seconds", "start_seconds", "clear_seconds", "load_seconds",
                 "save_seconds", "isolation", "final_logs"],
    "properties": {
        "index": {"type": "integer", "minimum": 0},
        "start_epoch": {"type": "integer", "minimum": 0},
        "end_epoch": {"type": "integer", "minimum": 1},
        "epochs": {"type": "integer", "minimum": 1},
        "outcome": {"type": "string", "enum": ["boundary", "finished", "stopped", "preempted", "nan",
                                               RUNNING, CRASHED]},
        "stop_reason": _STR_OR_NULL, "isolation": {"type": "string"}, "pid": {"type": ["integer", "null"]},
        "seconds": _NUM, "train_seconds": _NUM, "seconds_per_epoch": _NUM, "first_epoch_seconds": _NUM,
        "retrace_seconds": _NUM, "slowdown": _NUM, "samples_per_second": _NUM_OR_NULL,
        "peak_rss_mb": _NUM_OR_NULL, "last_rss_mb": _NUM_OR_NULL, "memory_growth": _NUM_OR_NULL,
        "peak_device_mb": _NUM_OR_NULL, "device_growth": _NUM_OR_NULL,
        "boundary_seconds": _NUM_OR_NULL, "start_seconds": _NUM_OR_NULL, "clear_seconds": _NUM_OR_NULL,
        "load_seconds": _NUM_OR_NULL, "save_seconds": _NUM_OR_NULL, "checkpoint": _STR_OR_NULL,
        "final_logs": {"type": "object", "additionalProperties": _NUM_OR_NULL},
    },
}
FINDING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "segment", "start_epoch", "end_epoch", "before", "after", "ratio", "message"],
    "properties": {
        "kind": {"type": "string", "enum": ["time_climb", "rss_climb", "device_climb", "boundary_cost"]},
        "segment": {"type": ["integer", "null"]}, "start_epoch": {"type": ["integer", "null"]},
        "end_epoch": {"type": ["integer", "null"]}, "before": _NUM, "after": _NUM,
        "ratio": _NUM_OR_NULL, "message": {"type": "string"},
    },
}
JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "segtrain report",
    "type": "object",
    "required": ["run_dir", "status", "alive", "epochs_total", "epochs_done", "segments_planned", "seconds",
                 "train_seconds", "boundary_seconds", "overhead_seconds", "boundary_overhead", "epochs_rerun",
                 "segments",
                 "findings"],
    "properties": {
        "run_dir": {"type": "string"},
        "status": {"type": "string", "enum": ["new", "running", "finished", "stopped", "interrupted", "failed",
                                              "unknown"]},
        "alive": {"type": "boolean"},
        "epochs_total": {"type": "integer", "minimum": 0},
        "epochs_done": {"type": "integer", "minimum": 0},
        "segment_length": {"type": ["integer", "null"]},
        "segments_planned": {"type": "integer", "minimum": 0},
        "isolation": {"type": "string"},
        "stop_reason": _STR_OR_NULL,
        "seconds": _NUM, "train_seconds": _NUM, "boundary_seconds": _NUM, "overhead_seconds": _NUM,
        "boundary_overhead": _NUM_OR_NULL,
        "epochs_rerun": {"type": "integer", "minimum": 0},
        "segments": {"type": "array", "items": SEGMENT_SCHEMA},
        "findings": {"type": "array", "items": FINDING_SCHEMA},
    },
}


# -- reading ---------------------------------------------------------------------------------------

def open_run_dir(run_dir: Path) -> tuple[RunPaths, dict[str, Any]]:
    """The run's paths and manifest; a clear error (exit 2) for a folder that holds no run."""
    paths = RunPaths(Path(run_dir))
    if not paths.root.is_dir():
        raise ConfigError(f"{run_dir} does not exist or is not a directory: give the run directory of a "
                          "`segtrain fit` (its --run-dir, by default checkpoints/<script name>).")
    if not paths.manifest.exists():
        raise ConfigError(f"{run_dir} is not a segtrain run directory (no manifest.json): give the --run-dir "
                          "of a `segtrain fit` (by default checkpoints/<script name>).")
    try:
        return paths, read_manifest(paths) or {}
    except (OSError, ValueError) as e:
        raise SegtrainError(f"{paths.manifest} cannot be read: {e}") from e


def newest_attempts(records: Sequence[T], position: Callable[[T], int]) -> tuple[list[T], int]:
    """Keep each position's newest attempt, in order; return them and how many were superseded.

    A record at position p supersedes every earlier record at p or later: a
    resume from an older checkpoint re-ran those.
    """
    kept: list[T] = []
    dropped = 0
    for rec in records:
        while kept and position(kept[-1]) >= position(rec):
            kept.pop()
            dropped += 1
        kept.append(rec)
    return kept, dropped


def load(run_dir: Path) -> RunLogs:
    """Read a run directory's manifest and logs (never takes the lock, never imports TensorFlow)."""
    paths, manifest = open_run_dir(run_dir)
    lines = [EpochRecord.from_json(r) for r in atomic.read_lines_json(paths.epochs_log)]
    segment_records = [r for r in atomic.read_lines_json(paths.segments_log) if "start_epoch" in r]
    epochs, rerun = newest_attempts([e for e in lines if e is not None], lambda e: e.epoch)
    if not epochs and segment_records:  # logs written before epochs.jsonl existed: rebuild from segments
        epochs, rerun = newest_attempts(_epochs_from_segments(segment_records), lambda e: e.epoch)
    return RunLogs(paths, manifest, epochs, segment_records, rerun, is_locked(paths))


def _epochs_from_segments(records: list[dict[str, Any]]) -> list[EpochRecord]:
    epochs = []
    for rec in records:
        for i, seconds in enumerate(rec.get("epoch_seconds") or []):
            epochs.append(EpochRecord(rec["start_epoch"] + i, rec.get("index", 0), seconds, pid=rec.get("pid")))
    return epochs


def attempts(epochs: Sequence[EpochRecord]) -> list[list[EpochRecord]]:
    """Split the epoch history into uninterrupted attempts: consecutive epochs of one segment in one process."""
    groups: list[list[EpochRecord]] = []
    for rec in epochs:
        last = groups[-1][-1] if groups else None
        if last is not None and (last.segment, last.pid, last.epoch + 1) == (rec.segment, rec.pid, rec.epoch):
            groups[-1].append(rec)
        else:
            groups.append([rec])
    return groups


def _matching_record(group: list[EpochRecord], records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest line of segments.jsonl written by the attempt that trained `group`."""
    first = group[0]
    for rec in reversed(records):
        pid = rec.get("pid")
        if (rec.get("index") == first.segment and rec.get("start_epoch") == first.epoch
                and rec.get("end_epoch", 0) > first.epoch and (pid is None or first.pid is None or pid == first.pid)):
            return rec
    return None


# -- building --------------------------------------------------------------------------------------

def build(run_dir: Path) -> Report:
    """The report of the run in `run_dir`, from its logs alone."""
    logs = load(run_dir)
    return build_from(logs)


def build_from(logs: RunLogs) -> Report:
    """The report of logs already read (status and plot read once and share them)."""
    config, manifest = logs.config, logs.manifest
    groups = attempts(logs.epochs)
    rows = _rows(groups, logs)
    length = config.get("segment") if isinstance(config.get("segment"), int) else None  # None: "auto"
    total = int(config.get("epochs") or 0)
    typical = length or (max(1, round(rows[-1].end_epoch / len(rows))) if rows else 1)
    costs = [r.cost() for r in rows]
    overhead, trained = boundary_overhead(costs)
    return Report(
        run_dir=str(logs.paths.root), status=manifest.get("status", "unknown"), alive=logs.alive,
        epochs_total=total, epochs_done=rows[-1].end_epoch if rows else int(manifest.get("epochs_done") or 0),
        segment_length=length, segments_planned=-(-total // length) if length else 0,
        isolation=config.get("isolation", ""), stop_reason=_stop_reason(manifest),
        seconds=sum(r.seconds for r in rows), train_seconds=sum(r.train_seconds for r in rows),
        boundary_seconds=sum(r.boundary_seconds or 0.0 for r in rows), overhead_seconds=overhead,
        boundary_overhead=(overhead / trained) if trained > 0 else None, epochs_rerun=logs.epochs_rerun,
        segments=rows, findings=_findings(groups, rows, costs, typical, total),
    )


def _rows(groups: list[list[EpochRecord]], logs: RunLogs) -> list[SegmentRow]:
    """A row per attempt; one without a segments.jsonl line is running (the last, if alive) or crashed."""
    rows = []
    for i, group in enumerate(groups):
        rec = _matching_record(group, logs.segment_records)
        unrecorded = RUNNING if logs.alive and i == len(groups) - 1 else CRASHED
        rows.append(_row(group, rec, unrecorded, logs.config.get("isolation", "")))
    _relative_to_first(rows)
    return rows


def _findings(groups: list[list[EpochRecord]], rows: list[SegmentRow], costs: list[SegmentCost], length: int,
              total: int) -> list[Finding]:
    found = [f for group, row in zip(groups, rows) for f in _climbs(group, row)]
    overhead = boundary_cost(costs, length, total)
    return found + ([overhead] if overhead is not None else [])


def _stop_reason(manifest: dict[str, Any]) -> str | None:
    """Why the run stopped; a reason left from an earlier invocation is not shown for a run going on."""
    status = manifest.get("status")
    if status == "failed":
        return manifest.get("error") or manifest.get("stop_reason")
    return manifest.get("stop_reason") if status in ("finished", "stopped", "interrupted") else None


def _row(group: list[EpochRecord], rec: dict[str, Any] | None, unrecorded: str, isolation: str) -> SegmentRow:
    seconds = [e.seconds for e in group]
    spe = typical_seconds(seconds)
    rss = [e.rss_mb for e in group if e.rss_mb is not None]
    device = [v for e in group for v in (e.device_mb, e.device_peak_mb) if v is not None]
    rec = rec or {}
    peak_rss = _max(rss + [rec.get("peak_rss_mb") or None])
    peak_device = _max(device + [rec.get("peak_device_mb")])
    rates = [e.samples_per_second for e in group[1:] or group if e.samples_per_second]
    return SegmentRow(
        index=group[0].segment, start_epoch=group[0].epoch, end_epoch=group[-1].epoch + 1, epochs=len(group),
        outcome=rec.get("outcome", unrecorded), stop_reason=rec.get("stop_reason"),
        isolation=rec.get("isolation", isolation), pid=group[0].pid if group[0].pid is not None else rec.get("pid"),
        seconds=rec.get("wall_seconds", sum(seconds)), train_seconds=rec.get("train_seconds", sum(seconds)),
        seconds_per_epoch=spe, first_epoch_seconds=seconds[0],
        retrace_seconds=max(0.0, seconds[0] - spe) if len(seconds) > 1 else 0.0,
        slowdown=1.0, samples_per_second=_median(rates),
        peak_rss_mb=peak_rss, last_rss_mb=rss[-1] if rss else None, memory_growth=None,
        peak_device_mb=peak_device, device_growth=None,
        boundary_seconds=rec.get("boundary_seconds"), start_seconds=rec.get("start_seconds"),
        clear_seconds=rec.get("clear_seconds"), load_seconds=rec.get("load_seconds"),
        save_seconds=rec.get("save_seconds"), checkpoint=rec.get("checkpoint"),
        final_logs=dict(rec.get("final_logs") or group[-1].logs),
    )


def _relative_to_first(rows: list[SegmentRow]) -> None:
    """Slowdown and memory growth: each row against the run's first segment."""
    if not rows:
        return
    base = rows[0]
    for row in rows:
        row.slowdown = _ratio(row.seconds_per_epoch, base.seconds_per_epoch) or 1.0
        row.memory_growth = _ratio(row.peak_rss_mb, base.peak_rss_mb)
        row.device_growth = _ratio(row.peak_device_mb, base.peak_device_mb)


def _climbs(group: list[EpochRecord], row: SegmentRow) -> list[Finding]:
    return segment_findings([e.seconds for e in group], [e.rss_mb for e in group],
                            [e.device_mb for e in group], row.index, row.start_epoch)


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def _max(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _median(values: list[float]) -> float | None:
    import statistics

    return statistics.median(values) if values else None


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


# -- showing ---------------------------------------------------------------------------------------

def render(report: Report, console: Any) -> None:
    """Print a rich table, one row per segment, a summary line and the findings."""
    if not report.segments:
        console.print(f"{report.run_dir}: {report.status}, no epoch finished yet "
                      f"(0/{report.epochs_total} epochs).", highlight=False, markup=False, soft_wrap=True)
        return
    from rich.markup import escape

    console.print(_table(report, console.width))
    for row in report.segments:
        if row.stop_reason:
            console.print(f"  segment {row.index + 1} {row.outcome}: {row.stop_reason}", highlight=False, markup=False)
    console.print(summary(report), highlight=False, markup=False)
    for message in finding_lines(report.findings):
        console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def finding_lines(findings: list[Finding]) -> list[str]:
    """One line per kind of finding: a leak that every segment shows is one problem, not one per segment."""
    by_kind: dict[str, list[Finding]] = {}
    for finding in findings:
        by_kind.setdefault(finding.kind, []).append(finding)
    lines = []
    for kind, found in by_kind.items():
        worst = max(found, key=lambda f: f.ratio)
        if len(found) == 1:
            lines.append(worst.message)
            continue
        others = sorted({f.segment + 1 for f in found if f is not worst and f.segment is not None})
        shown = ", ".join(map(str, others[:12])) + (", …" if len(others) > 12 else "")
        lines.append(f"{worst.message} Segment{'s' if len(others) > 1 else ''} {shown} too "
                     f"({len(others) + 1} of the run's segments).")
    return lines


@dataclass
class _Column:
    header: str
    cells: list[str]
    drop_rank: int = 0  # columns with a higher rank go first when the terminal is narrow (0: never)

    @property
    def width(self) -> int:
        from rich.text import Text

        texts = [Text.from_markup(c).cell_len for c in self.cells]
        return max([len(line) for line in self.header.split("\n")] + texts) + 2


def _columns(rows: list[SegmentRow]) -> list[_Column]:
    """Every column the rows have data for; the boundary split and growth ratios may be dropped."""
    def col(header: str, values: list[str], rank: int = 0) -> _Column:
        return _Column(header, values, rank)

    spe_fmt = _seconds_format([r.seconds_per_epoch for r in rows])
    first_fmt = _seconds_format([r.first_epoch_seconds for r in rows])
    cols = [
        col("seg", [str(r.index + 1) for r in rows]),
        col("epochs", [f"{r.start_epoch + 1}–{r.end_epoch}" for r in rows]),
        col("outcome", [_outcome_cell(r.outcome) for r in rows], 9),
        col("time s", [f"{r.seconds:.1f}" for r in rows]),
        col("s/epoch", [spe_fmt.format(r.seconds_per_epoch) for r in rows]),
        col("1st\nepoch s", [first_fmt.format(r.first_epoch_seconds) for r in rows], 6),
        col("slow-\ndown", [_ratio_cell(r.slowdown, 1.15) for r in rows]),
        col("peak\nRSS MB", [_fmt(r.peak_rss_mb, "{:.0f}") for r in rows]),
        col("RSS\ngrowth", [_ratio_cell(r.memory_growth, 1.1) for r in rows], 5),
    ]
    if any(r.peak_device_mb is not None for r in rows):
        cols += [col("device\nMB", [_fmt(r.peak_device_mb, "{:.0f}") for r in rows], 7),
                 col("device\ngrowth", [_ratio_cell(r.device_growth, 1.1) for r in rows], 4)]
    setup = "start" if all(r.clear_seconds is None for r in rows) else "start/\nclear"
    cols += [
        col("bound-\nary s", [_fmt(r.boundary_seconds, "{:.2f}") for r in rows]),
        col(setup, [_fmt(_setup_seconds(r), "{:.2f}") for r in rows], 3),
        col("load", [_fmt(r.load_seconds, "{:.2f}") for r in rows], 2),
        col("save", [_fmt(r.save_seconds, "{:.2f}") for r in rows], 1),
    ]
    for key in ("loss", "val_loss"):
        if any(key in r.final_logs for r in rows):
            cols.append(col(key, [_fmt(r.final_logs.get(key), "{:.4g}") for r in rows], 8))
    return cols


def _fit_width(cols: list[_Column], width: int) -> list[_Column]:
    """Drop the least needed columns until the table fits `width` terminal cells."""
    cols = list(cols)
    while sum(c.width for c in cols) > width:
        droppable = [c for c in cols if c.drop_rank]
        if not droppable:
            break
        cols.remove(min(droppable, key=lambda c: c.drop_rank))
    return cols


def _table(report: Report, width: int) -> Any:
    from rich import box
    from rich.table import Table

    cols = _fit_width(_columns(report.segments), width)
    from rich.markup import escape

    table = Table(title=f"segtrain run {escape(report.run_dir)}", title_justify="left", box=box.SIMPLE_HEAD,
                  padding=(0, 1), pad_edge=False, collapse_padding=True)
    for c in cols:
        table.add_column(c.header, justify="left" if c.header == "outcome" else "right", no_wrap=True)
    for i in range(len(report.segments)):
        table.add_row(*(c.cells[i] for c in cols))
    return table


def summary(report: Report) -> str:
    """The line under the table: where the run stands, what segmenting cost and what it bought."""
    rows = report.segments
    worst = max(rows, key=lambda r: r.slowdown)
    gone = report.status == "running" and not report.alive
    dead = " (its process is gone: `segtrain resume` goes on)" if gone else ""
    parts = [
        f"{report.status}{dead}: {report.epochs_done}/{report.epochs_total} epochs in {len(rows)} segment"
        f"{'s' if len(rows) != 1 else ''}" + (f" ({report.isolation} isolation)" if report.isolation else ""),
        f"{report.seconds:.1f} s: {report.train_seconds:.1f} s training, {report.boundary_seconds:.1f} s at "
        "boundaries",
    ]
    if report.boundary_overhead is not None:
        parts.append(f"segmenting cost {report.overhead_seconds:.1f} s ({report.boundary_overhead:.1%} of training)")
    parts.append(f"slowdown last ×{rows[-1].slowdown:.2f}, worst ×{worst.slowdown:.2f} (segment {worst.index + 1})")
    peaks = [r.peak_rss_mb for r in rows if r.peak_rss_mb is not None]
    if peaks:
        growth = rows[-1].memory_growth
        parts.append(f"peak RSS {max(peaks):.0f} MB" + (f", growth last ×{growth:.2f}" if growth else ""))
    if report.epochs_rerun:
        parts.append(f"{report.epochs_rerun} epoch{'s' if report.epochs_rerun != 1 else ''} re-run after crashes")
    if report.stop_reason and report.status != "finished":
        parts.append(report.stop_reason)
    return "; ".join(parts)


def _outcome_cell(outcome: str) -> str:
    style = {"nan": "red", CRASHED: "red", "preempted": "yellow", RUNNING: "cyan", "stopped": "yellow"}.get(outcome)
    return f"[{style}]{outcome}[/]" if style else outcome


def _ratio_cell(ratio: float | None, warn: float) -> str:
    """×1.23, yellow from `warn` on and red from ×1.5."""
    if ratio is None:
        return "–"
    text = f"×{ratio:.2f}"
    return f"[red]{text}[/]" if ratio >= 1.5 else f"[yellow]{text}[/]" if ratio >= warn else text


def _setup_seconds(row: SegmentRow) -> float | None:
    if row.start_seconds is None and row.clear_seconds is None:
        return None
    return (row.start_seconds or 0.0) + (row.clear_seconds or 0.0)


def _seconds_format(values: list[float]) -> str:
    """One number of decimals for a whole column, enough for its smallest value."""
    small = min(values, default=1.0)
    return "{:.0f}" if small >= 100 else "{:.1f}" if small >= 10 else "{:.2f}" if small >= 0.1 else "{:.3f}"


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else spec.format(value)

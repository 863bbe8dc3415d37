"""What a run did, per segment: built from the run directory alone, shown as a table or JSON.

Definitions (also in the README):

* seconds per epoch of a segment: the median of its epochs' wall seconds,
  leaving out the segment's first epoch (which includes tracing) when it has
  others; the first epoch is reported on its own.
* slowdown of segment k: its seconds per epoch / segment 1's.
* memory growth of segment k: its peak RSS / segment 1's.
* boundary seconds: what the boundary before the segment cost: process start
  (or the wait for a pre-started worker) or the session clear, plus the load,
  plus the segment's saves.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segtrain import atomic
from segtrain.rundir import RunPaths, read_manifest


@dataclass
class SegmentRow:
    index: int
    start_epoch: int
    end_epoch: int
    seconds: float
    seconds_per_epoch: float
    first_epoch_seconds: float | None
    slowdown: float
    peak_rss_mb: float
    memory_growth: float
    peak_device_mb: float | None
    boundary_seconds: float
    start_seconds: float
    clear_seconds: float
    load_seconds: float
    save_seconds: float
    isolation: str
    outcome: str
    stop_reason: str | None
    final_logs: dict[str, float] = field(default_factory=dict)


@dataclass
class Report:
    run_dir: str
    status: str
    epochs_total: int
    epochs_done: int
    stop_reason: str | None
    segments: list[SegmentRow]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _segment_records(paths: RunPaths) -> list[dict]:
    """The last record of each segment attempt that trained; a resumed segment keeps its newest."""
    by_start: dict[int, dict] = {}
    for rec in atomic.read_lines_json(paths.segments_log):
        if rec.get("end_epoch", 0) > rec.get("start_epoch", 0):
            by_start[rec["start_epoch"]] = rec
    records = sorted(by_start.values(), key=lambda r: r["start_epoch"])
    kept, covered = [], 0
    for rec in records:  # drop attempts overtaken by a resume from an earlier checkpoint
        if rec["start_epoch"] >= covered or not kept:
            kept.append(rec)
            covered = rec["end_epoch"]
    return kept


def build(run_dir: Path) -> Report:
    paths = RunPaths(Path(run_dir))
    manifest = read_manifest(paths) or {}
    config = manifest.get("config", {})
    rows: list[SegmentRow] = []
    base_spe = base_rss = None
    for rec in _segment_records(paths):
        epoch_seconds = rec.get("epoch_seconds") or [0.0]
        rest = epoch_seconds[1:] if len(epoch_seconds) > 1 else epoch_seconds
        spe = statistics.median(rest)
        base_spe = base_spe or spe or None
        base_rss = base_rss or rec.get("peak_rss_mb") or None
        rows.append(SegmentRow(
            index=len(rows), start_epoch=rec["start_epoch"], end_epoch=rec["end_epoch"],
            seconds=rec.get("wall_seconds", 0.0), seconds_per_epoch=spe,
            first_epoch_seconds=rec.get("first_epoch_seconds"),
            slowdown=(spe / base_spe) if base_spe else 1.0,
            peak_rss_mb=rec.get("peak_rss_mb", 0.0),
            memory_growth=(rec.get("peak_rss_mb", 0.0) / base_rss) if base_rss else 1.0,
            peak_device_mb=rec.get("peak_device_mb"),
            boundary_seconds=rec.get("boundary_seconds", 0.0),
            start_seconds=rec.get("start_seconds", 0.0), clear_seconds=rec.get("clear_seconds", 0.0),
            load_seconds=rec.get("load_seconds", 0.0), save_seconds=rec.get("save_seconds", 0.0),
            isolation=rec.get("isolation", config.get("isolation", "")), outcome=rec.get("outcome", ""),
            stop_reason=rec.get("stop_reason"), final_logs=rec.get("final_logs", {}),
        ))
    epochs_done = manifest.get("epochs_done", rows[-1].end_epoch if rows else 0)
    return Report(str(run_dir), manifest.get("status", "unknown"), config.get("epochs", 0), epochs_done,
                  manifest.get("stop_reason"), rows)


def render(report: Report, console: Any) -> None:
    """Print a rich table, one row per segment, and a summary line."""
    from rich.table import Table

    table = Table(title=f"segtrain run {report.run_dir}", title_justify="left")
    for name in ("segment", "epochs", "seconds", "s/epoch", "1st epoch", "slowdown", "peak RSS MB",
                 "boundary s", "loss"):
        table.add_column(name, justify="right")
    for row in report.segments:
        loss = row.final_logs.get("loss")
        table.add_row(
            str(row.index + 1), f"{row.start_epoch + 1}–{row.end_epoch}", f"{row.seconds:.1f}",
            f"{row.seconds_per_epoch:.3f}",
            "" if row.first_epoch_seconds is None else f"{row.first_epoch_seconds:.3f}",
            f"{row.slowdown:.2f}", f"{row.peak_rss_mb:.0f}", f"{row.boundary_seconds:.2f}",
            "" if loss is None else f"{loss:.4g}",
        )
    console.print(table)
    total = sum(r.seconds for r in report.segments)
    boundary = sum(r.boundary_seconds for r in report.segments)
    last = report.segments[-1].slowdown if report.segments else 1.0
    console.print(
        f"{report.status}: {report.epochs_done}/{report.epochs_total} epochs in {len(report.segments)} "
        f"segments, {total:.1f} s ({boundary:.1f} s at boundaries); last segment's slowdown {last:.2f}"
        + (f"; {report.stop_reason}" if report.stop_reason else "")
    )

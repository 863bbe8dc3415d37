"""Showing a report: a rich table with one row per segment, a summary line, and the warnings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from segtrain.outcomes import RunStatus, SegmentOutcome
from segtrain.telemetry.report import Report, SegmentRow
from segtrain.telemetry.trends import Finding, FindingKind

#: Slowdowns from here on are yellow (ratios from ×1.5 on are red); memory growth from GROWTH_WARN.
SLOWDOWN_WARN = 1.15
GROWTH_WARN = 1.1
RATIO_ALARM = 1.5

_OUTCOME_STYLES = {
    SegmentOutcome.NAN: "red",
    SegmentOutcome.CRASHED: "red",
    SegmentOutcome.PREEMPTED: "yellow",
    SegmentOutcome.RUNNING: "cyan",
    SegmentOutcome.STOPPED: "yellow",
}


def render(report: Report, console: Any) -> None:
    """Print a rich table, one row per segment, the stop reasons, a summary line and the findings."""
    if not report.segments:
        console.print(
            f"{report.run_dir}: {report.status}, no epoch finished yet (0/{report.epochs_total} epochs).",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
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
    by_kind: dict[FindingKind, list[Finding]] = {}
    for finding in findings:
        by_kind.setdefault(finding.kind, []).append(finding)
    lines = []
    for found in by_kind.values():
        worst = max(found, key=lambda f: f.ratio)
        if len(found) == 1:
            lines.append(worst.message)
            continue
        others = sorted({f.segment + 1 for f in found if f is not worst and f.segment is not None})
        shown = ", ".join(map(str, others[:12])) + (", …" if len(others) > 12 else "")
        lines.append(
            f"{worst.message} Segment{'s' if len(others) > 1 else ''} {shown} too "
            f"({len(others) + 1} of the run's segments)."
        )
    return lines


def summary(report: Report) -> str:
    """The line under the table: where the run stands, what segmenting cost and what it bought."""
    rows = report.segments
    worst = max(rows, key=lambda r: r.slowdown)
    gone = report.status is RunStatus.RUNNING and not report.alive
    dead = " (its process is gone: `segtrain resume` goes on)" if gone else ""
    parts = [
        f"{report.status}{dead}: {report.epochs_done}/{report.epochs_total} epochs in {len(rows)} segment"
        f"{'s' if len(rows) != 1 else ''}" + (f" ({report.isolation} isolation)" if report.isolation else ""),
        f"{report.seconds:.1f} s: {report.train_seconds:.1f} s training, {report.boundary_seconds:.1f} s at boundaries",
    ]
    if report.boundary_overhead is not None:
        parts.append(segmenting_cost(report))
    parts.append(f"slowdown last ×{rows[-1].slowdown:.2f}, worst ×{worst.slowdown:.2f} (segment {worst.index + 1})")
    peaks = [r.peak_rss_mb for r in rows if r.peak_rss_mb is not None]
    if peaks:
        growth = rows[-1].memory_growth
        parts.append(f"peak RSS {max(peaks):.0f} MB" + (f", growth last ×{growth:.2f}" if growth else ""))
    if report.params:
        parts.append("params " + ", ".join(f"{k}={v}" for k, v in report.params.items()))
    if report.epochs_rerun:
        parts.append(f"{report.epochs_rerun} epoch{'s' if report.epochs_rerun != 1 else ''} re-run after crashes")
    if report.stop_reason and report.status is not RunStatus.FINISHED:
        parts.append(report.stop_reason)
    return "; ".join(parts)


def segmenting_cost(report: Report) -> str:
    """What segmenting cost, and its parts (docs/telemetry.md, figures.SegmentingCost)."""
    text = (
        f"segmenting cost {report.overhead_seconds:.1f} s ({report.boundary_overhead or 0.0:.1%} of training: "
        f"boundaries {report.overhead_boundary_seconds:.1f} s, re-traces {report.overhead_retrace_seconds:.1f} s, "
        f"other {report.overhead_other_seconds:.1f} s"
    )
    if report.spare_busy_epochs or report.prestart_cpu_seconds:
        text += (
            f", {report.spare_busy_epochs} epoch{'s' if report.spare_busy_epochs != 1 else ''} beside a busy "
            f"pre-started worker {report.overhead_spare_seconds:.1f} s; the pre-started workers used "
            f"{report.prestart_cpu_seconds:.1f} CPU-s"
        )
    return text + ")"


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
    spe_fmt = _seconds_format([r.seconds_per_epoch for r in rows])
    first_fmt = _seconds_format([r.first_epoch_seconds for r in rows])
    cols = [
        _Column("seg", [str(r.index + 1) for r in rows]),
        _Column("epochs", [f"{r.start_epoch + 1}–{r.end_epoch}" for r in rows]),
        _Column("outcome", [_outcome_cell(r.outcome) for r in rows], 9),
        _Column("time s", [f"{r.seconds:.1f}" for r in rows]),
        _Column("s/epoch", [spe_fmt.format(r.seconds_per_epoch) for r in rows]),
        _Column("1st\nepoch s", [first_fmt.format(r.first_epoch_seconds) for r in rows], 6),
        _Column("slow-\ndown", [_ratio_cell(r.slowdown, SLOWDOWN_WARN) for r in rows]),
        _Column("peak\nRSS MB", [_fmt(r.peak_rss_mb, "{:.0f}") for r in rows]),
        _Column("RSS\ngrowth", [_ratio_cell(r.memory_growth, GROWTH_WARN) for r in rows], 5),
    ]
    if any(r.peak_device_mb is not None for r in rows):
        cols += [
            _Column("device\nMB", [_fmt(r.peak_device_mb, "{:.0f}") for r in rows], 7),
            _Column("device\ngrowth", [_ratio_cell(r.device_growth, GROWTH_WARN) for r in rows], 4),
        ]
    setup = "start" if all(r.clear_seconds is None for r in rows) else "start/\nclear"
    cols += [
        _Column("bound-\nary s", [_fmt(r.boundary_seconds, "{:.2f}") for r in rows]),
        _Column(setup, [_fmt(_start_or_clear(r), "{:.2f}") for r in rows], 3),
        _Column("load", [_fmt(r.load_seconds, "{:.2f}") for r in rows], 2),
        _Column("save", [_fmt(r.save_seconds, "{:.2f}") for r in rows], 1),
    ]
    if any(r.prestart_cpu_seconds is not None or r.spare_busy_epochs for r in rows):
        cols += [
            _Column("prestart\nCPU s", [_fmt(r.prestart_cpu_seconds, "{:.1f}") for r in rows], 1),
            _Column("beside\nspare s", [_spare_cell(r) for r in rows], 1),
        ]
    for key in ("loss", "val_loss"):
        if any(key in r.final_logs for r in rows):
            cols.append(_Column(key, [_fmt(r.final_logs.get(key), "{:.4g}") for r in rows], 8))
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
    from rich.markup import escape
    from rich.table import Table

    cols = _fit_width(_columns(report.segments), width)
    table = Table(
        title=f"segtrain run {escape(report.run_dir)}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
    )
    for c in cols:
        table.add_column(c.header, justify="left" if c.header == "outcome" else "right", no_wrap=True)
    for i in range(len(report.segments)):
        table.add_row(*(c.cells[i] for c in cols))
    return table


def _outcome_cell(outcome: SegmentOutcome) -> str:
    style = _OUTCOME_STYLES.get(outcome)
    return f"[{style}]{outcome}[/]" if style else str(outcome)


def _ratio_cell(value: float | None, warn: float) -> str:
    """×1.23, yellow from `warn` on and red from ×1.5."""
    if value is None:
        return "–"
    text = f"×{value:.2f}"
    return f"[red]{text}[/]" if value >= RATIO_ALARM else f"[yellow]{text}[/]" if value >= warn else text


def _start_or_clear(row: SegmentRow) -> float | None:
    """The start-or-clear cell: None where the segment recorded neither (running or crashed)."""
    if row.start_seconds is None and row.clear_seconds is None:
        return None
    return row.boundary().start_or_clear_seconds


def _spare_cell(row: SegmentRow) -> str:
    """Epoch seconds lost beside the busy spare, and over how many epochs: `0.84/3`; – where none ran."""
    if row.spare_busy_epochs is None:
        return "–"
    if row.spare_lost_seconds is None:
        return f"?/{row.spare_busy_epochs}"
    return f"{row.spare_lost_seconds:.2f}/{row.spare_busy_epochs}"


def _seconds_format(values: list[float]) -> str:
    """One number of decimals for a whole column, enough for its smallest value."""
    small = min(values, default=1.0)
    return "{:.0f}" if small >= 100 else "{:.1f}" if small >= 10 else "{:.2f}" if small >= 0.1 else "{:.3f}"


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else spec.format(value)

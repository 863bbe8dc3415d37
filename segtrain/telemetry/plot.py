"""`segtrain report --plot FILE.png`: the whole run in one picture.

Three panels share the epoch axis, with every segment boundary marked:

1. seconds per epoch, each segment's median drawn across it and labelled
   with its slowdown; the first epoch of each segment (tracing) drawn apart,
   since it would otherwise flatten everything else;
2. memory: the RSS after each epoch and each segment's peak (device memory in
   a panel of its own when there is any);
3. what each segment's boundary cost: start or clear, load, save, and the
   retracing of its first epoch.

matplotlib is an optional extra (`pip install 'segtrain[plot]'`): training
never needs it. Only its object API is used (no pyplot), so drawing changes no
global state and needs no display.
"""

from __future__ import annotations

import bisect
import io
from pathlib import Path
from typing import Any

from segtrain.errors import ConfigError
from segtrain.outcomes import RunStatus, SegmentOutcome
from segtrain.state import atomic
from segtrain.telemetry.logs import RunLogs
from segtrain.telemetry.render import RATIO_ALARM, SLOWDOWN_WARN
from segtrain.telemetry.report import Report, SegmentRow

COLORS = {
    "epoch": "#1f77b4",
    "first": "#d62728",
    "median": "#ff7f0e",
    "rss": "#2ca02c",
    "peak": "#98df8a",
    "device": "#9467bd",
    "device_peak": "#c5b0d5",
    "start": "#7f7f7f",
    "load": "#17becf",
    "save": "#bcbd22",
    "retrace": "#e377c2",
    "spare": "#ff9896",
}
_MAX_LABELS = 30  # segment labels and slowdown annotations only while they stay legible
_FAILED = (SegmentOutcome.CRASHED, SegmentOutcome.NAN)  # attempts shaded and labelled in red
_PLAIN = (SegmentOutcome.BOUNDARY, SegmentOutcome.FINISHED)  # outcomes the segment labels leave unsaid


def require_matplotlib() -> None:
    """Raise a ConfigError (exit 2) that says how to install the extra when matplotlib is missing."""
    try:
        import matplotlib
        import matplotlib.figure  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            "--plot needs matplotlib, an optional extra of segtrain: pip install 'segtrain[plot]' "
            f"(or pip install matplotlib). ({e})"
        ) from None


def draw(logs: RunLogs, report: Report, out: Path) -> Path:
    """Draw `report` (with the per-epoch records of `logs`) into the PNG `out`, written atomically."""
    fig = figure(logs, report)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(out, buffer.getvalue())
    return out


def figure(logs: RunLogs, report: Report) -> Any:
    """The run as a matplotlib `Figure`: panels of seconds per epoch, memory (and device memory), boundary cost."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    has_device = any(e.device_mb is not None or e.device_peak_mb is not None for e in logs.epochs)
    heights = [3.0, 2.2] + ([2.0] if has_device else []) + [1.6]
    fig = Figure(figsize=(12, 2.2 + sum(heights) * 0.95), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(heights), 1, sharex=True, gridspec_kw={"height_ratios": heights})
    fig.suptitle(_title(report), fontsize=11, x=0.01, horizontalalignment="left")
    _seconds_panel(axes[0], logs, report)
    _memory_panel(axes[1], logs, report)
    if has_device:
        _device_panel(axes[2], logs, report)
    _boundary_panel(axes[-1], report)
    for ax in axes:
        _mark_segments(ax, report)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(x=0.01)
    axes[-1].set_xlabel("epoch")
    if report.epochs_total:
        axes[-1].set_xlim(0.5, max(report.epochs_total, report.epochs_done) + 0.5)
    _label_segments(axes[0], report)
    return fig


def _title(report: Report) -> str:
    rows = report.segments
    name = Path(report.run_dir).name
    gone = report.status is RunStatus.RUNNING and not report.alive
    state = f"{report.status}" + (" (no live process)" if gone else "")
    head = (
        f"{name}: {state}, {report.epochs_done}/{report.epochs_total} epochs, "
        f"{len(rows)} segment{'s' if len(rows) != 1 else ''}"
        + (f" of {report.segment_length}" if report.segment_length else "")
        + (f" ({report.isolation} isolation)" if report.isolation else "")
    )
    if not rows:
        return head + " — no epoch finished yet"
    facts = [f"slowdown last ×{rows[-1].slowdown:.2f}, worst ×{max(r.slowdown for r in rows):.2f}"]
    if rows[-1].memory_growth is not None:
        facts.append(f"RSS growth last ×{rows[-1].memory_growth:.2f}")
    if report.boundary_overhead is not None:
        facts.append(f"segmenting cost {report.boundary_overhead:.0%} of training time")
    if report.epochs_rerun:
        facts.append(f"{report.epochs_rerun} epochs re-run after crashes")
    return head + "\n" + "; ".join(facts)


def _first_epochs(report: Report) -> set[int]:
    return {r.start_epoch for r in report.segments if r.epochs > 1}


def _seconds_panel(ax: Any, logs: RunLogs, report: Report) -> None:
    firsts = _first_epochs(report)
    steady = [(e.epoch + 1, e.seconds) for e in logs.epochs if e.epoch not in firsts]
    first = [(e.epoch + 1, e.seconds) for e in logs.epochs if e.epoch in firsts]
    many = len(logs.epochs) > 300
    if steady:
        xs, ys = _broken_at_boundaries(steady, report)
        ax.plot(xs, ys, color=COLORS["epoch"], lw=1, marker=None if many else ".", ms=4, label="seconds per epoch")
    for i, row in enumerate(report.segments):
        ax.hlines(
            row.seconds_per_epoch,
            row.start_epoch + 0.5,
            row.end_epoch + 0.5,
            color=COLORS["median"],
            lw=2.5,
            alpha=0.85,
            label="segment median (s/epoch)" if i == 0 else None,
        )
    top = _clip_top([s for _, s in steady] + [r.seconds_per_epoch for r in report.segments])
    if first:
        off_scale = any(s > top for _, s in first)
        clipped = [(x, min(s, top * 0.97)) for x, s in first]
        ax.scatter(
            *zip(*clipped, strict=True),
            marker="^" if off_scale else "o",
            facecolors="none",
            edgecolors=COLORS["first"],
            s=30,
            zorder=3,
            label="1st epoch of a segment (tracing)" + (", off scale" if off_scale else ""),
        )
        if off_scale and len(first) <= _MAX_LABELS:
            for x, s in first:
                if s > top:
                    ax.annotate(
                        f"{s:.3g} s",
                        (x, top * 0.97),
                        xytext=(5, -3),
                        textcoords="offset points",
                        fontsize=7,
                        va="top",
                        color=COLORS["first"],
                    )
    if top > 0:
        ax.set_ylim(0, top)
    _slowdown_labels(ax, report, top)
    ax.set_ylabel("seconds / epoch")
    _legend(ax)


def _clip_top(values: list[float]) -> float:
    """A y limit that shows the steady epochs in detail: first epochs beyond it are drawn at the edge."""
    if not values:
        return 1.0
    ordered = sorted(values)
    high = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return high * 1.35 if high > 0 else 1.0


def _slowdown_labels(ax: Any, report: Report, top: float) -> None:
    if len(report.segments) > _MAX_LABELS:
        return
    for row in report.segments:
        x = (row.start_epoch + row.end_epoch + 1) / 2
        y = min(row.seconds_per_epoch, top * 0.8)
        ax.annotate(
            f"×{row.slowdown:.2f}",
            (x, y),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
            color=_ratio_color(row.slowdown, SLOWDOWN_WARN),
        )


def _ratio_color(ratio: float, warn: float) -> str:
    return "#b00000" if ratio >= RATIO_ALARM else "#c07000" if ratio >= warn else "#333333"


def _memory_panel(ax: Any, logs: RunLogs, report: Report) -> None:
    rss = [(e.epoch + 1, e.rss_mb) for e in logs.epochs if e.rss_mb is not None]
    if rss:
        xs, ys = _broken_at_boundaries(rss, report)
        ax.plot(
            xs,
            ys,
            color=COLORS["rss"],
            lw=1.2,
            marker=None if len(rss) > 300 else ".",
            ms=4,
            label="RSS after each epoch",
        )
    _segment_steps(ax, report.segments, "peak_rss_mb", COLORS["peak"], "segment peak RSS")
    _keep_scale(ax, [v for _, v in rss] + [r.peak_rss_mb for r in report.segments if r.peak_rss_mb])
    ax.set_ylabel("RSS (MB)")
    _legend(ax)


def _device_panel(ax: Any, logs: RunLogs, report: Report) -> None:
    current = [(e.epoch + 1, e.device_mb) for e in logs.epochs if e.device_mb is not None]
    peak = [(e.epoch + 1, e.device_peak_mb) for e in logs.epochs if e.device_peak_mb is not None]
    if current:
        ax.plot(*_broken_at_boundaries(current, report), color=COLORS["device"], lw=1.2, label="device memory in use")
    if peak:
        ax.plot(
            *_broken_at_boundaries(peak, report),
            color=COLORS["device_peak"],
            lw=1,
            ls="--",
            label="device peak (since process start)",
        )
    _keep_scale(ax, [v for _, v in current + peak])
    ax.set_ylabel("device (MB)")
    _legend(ax)


def _segment_steps(ax: Any, rows: list[SegmentRow], field: str, color: str, label: str) -> None:
    first = True
    for row in rows:
        value = getattr(row, field)
        if value is None:
            continue
        ax.hlines(
            value,
            row.start_epoch + 0.5,
            row.end_epoch + 0.5,
            color=color,
            lw=3,
            alpha=0.9,
            label=label if first else None,
            zorder=1,
        )
        first = False


def _boundary_panel(ax: Any, report: Report) -> None:
    """Stacked bars, one per segment: what its boundary (start/clear, load, save), retracing and spare cost."""
    rows = report.segments
    if not rows:
        ax.set_ylabel("boundary (s)")
        return
    xs = [(r.start_epoch + r.end_epoch + 1) / 2 for r in rows]
    widths = [max(0.6, (r.end_epoch - r.start_epoch) * 0.6) for r in rows]
    costs = [r.boundary() for r in rows]
    parts = [
        ("start or clear", "start", [c.start_or_clear_seconds for c in costs]),
        ("load", "load", [c.load_seconds for c in costs]),
        ("save", "save", [c.save_seconds for c in costs]),
        ("retrace (1st epoch − median)", "retrace", [r.retrace_seconds for r in rows]),
        ("epochs slowed beside the next worker", "spare", [r.spare_lost_seconds or 0.0 for r in rows]),
    ]
    bottom = [0.0] * len(rows)
    for label, color, heights in parts:
        if any(heights):
            ax.bar(xs, heights, widths, bottom=bottom, color=COLORS[color], label=label)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel("boundary (s)")
    _legend(ax)


def _mark_segments(ax: Any, report: Report) -> None:
    """Boundaries as dashed lines, every other segment shaded, crashed attempts in red."""
    for i, row in enumerate(report.segments):
        if row.outcome in _FAILED:
            ax.axvspan(row.start_epoch + 0.5, row.end_epoch + 0.5, color="#d62728", alpha=0.08, lw=0)
        elif i % 2:
            ax.axvspan(row.start_epoch + 0.5, row.end_epoch + 0.5, color="#000000", alpha=0.035, lw=0)
        if i:
            ax.axvline(row.start_epoch + 0.5, color="#555555", ls="--", lw=0.8, alpha=0.7)


def _label_segments(ax: Any, report: Report) -> None:
    """Segment numbers (and an outcome other than a plain boundary) along the top of the first panel."""
    if len(report.segments) > _MAX_LABELS:
        return
    transform = ax.get_xaxis_transform()
    for row in report.segments:
        label = f"S{row.index + 1}"
        if row.outcome not in _PLAIN:
            label += f" {row.outcome}"
        ax.text(
            (row.start_epoch + row.end_epoch + 1) / 2,
            1.01,
            label,
            transform=transform,
            ha="center",
            va="bottom",
            fontsize=8,
            color="#b00000" if row.outcome in _FAILED else "#333333",
        )


def _broken_at_boundaries(points: list[tuple[int, float]], report: Report) -> tuple[list[float], list[float]]:
    """The points as x and y lists with a gap (NaN) wherever a segment boundary falls between two of them."""
    starts = sorted(r.start_epoch + 1 for r in report.segments)
    xs: list[float] = []
    ys: list[float] = []
    previous = None
    for x, y in points:
        segment = bisect.bisect_right(starts, x)
        if previous is not None and segment != previous:
            xs.append(x - 0.5)
            ys.append(float("nan"))
        xs.append(x)
        ys.append(y)
        previous = segment
    return xs, ys


def _keep_scale(ax: Any, values: list[float]) -> None:
    """Span at least 10% of the largest value, so that a few MB of jitter does not look like a leak."""
    if not values:
        return
    low, high = min(values), max(values)
    span = max(high - low, 0.1 * high)
    middle = (low + high) / 2
    ax.set_ylim(max(0.0, middle - span * 0.6), middle + span * 0.6)


def _legend(ax: Any) -> None:
    """Legends beside the panels, where they hide no data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, framealpha=0.9, borderaxespad=0)

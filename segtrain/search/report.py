"""What a sweep did, per trial: the study's states and values beside each trial's own run directory.

`segtrain report DIR` and `segtrain status DIR` on a sweep directory show this;
on a trial's own directory (`DIR/trials/trial-NNNN`) they show that run.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segtrain.errors import CheckpointError, ConfigError
from segtrain.paths import RunPaths
from segtrain.search.claims import BEST_EPOCH_ATTR, ERROR_ATTR_NAMES, PARAMS_ATTR, trial_dir
from segtrain.search.config import is_sweep_dir, read_sweep_manifest
from segtrain.search.study import open_storage, storage_url
from segtrain.state import atomic
from segtrain.telemetry.plot import require_matplotlib
from segtrain.telemetry.report import build as build_run


@dataclass
class TrialRow:
    number: int
    state: str  # Optuna's: COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    value: float | None
    params: dict[str, Any]
    run_dir: str
    epochs_done: int
    best_epoch: int | None
    seconds: float | None
    peak_rss_mb: float | None
    alive: bool  # a live process holds the trial's run (it trains now)
    reason: str | None  # why it failed or was pruned


@dataclass
class SweepReport:
    sweep_dir: str
    study: str
    metric: str
    direction: str
    trials_wanted: int
    finished: int  # complete and pruned
    trials: list[TrialRow] = field(default_factory=list)
    best: dict[str, Any] | None = None  # number, value, params, run_dir

    def to_json(self) -> dict[str, Any]:
        def finite(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: finite(x) for k, x in v.items()}
            if isinstance(v, list):
                return [finite(x) for x in v]
            return v

        return finite(asdict(self))


def build(sweep_dir: Path | str, storage: str | None = None) -> SweepReport:
    """The report of the sweep in `sweep_dir`; `storage`: its database URL where the manifest's has a password."""
    import optuna

    root = Path(sweep_dir)
    manifest = read_sweep_manifest(root)
    saved = manifest.config
    url = storage or saved.get("storage") or storage_url(root, None)
    if "***" in url:
        raise ConfigError(f"{root}'s study is in {url}: give its URL with the password, --storage URL.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=manifest.study, storage=open_storage(url))
    except KeyError:
        raise ConfigError(f"The study {manifest.study!r} is not in {url}.") from None
    report = SweepReport(str(root), manifest.study, manifest.metric, manifest.direction, manifest.trials, 0)
    for t in study.get_trials(deepcopy=False):
        run_dir = trial_dir(root, t.number)
        epochs, seconds, peak, alive = 0, None, None, False
        if RunPaths(run_dir).manifest.exists():
            run = build_run(run_dir)
            epochs, seconds, alive = run.epochs_done, run.seconds, run.alive
            peaks = [r.peak_rss_mb for r in run.segments if r.peak_rss_mb is not None]
            peak = max(peaks) if peaks else None
        reason = next((t.user_attrs[k] for k in ERROR_ATTR_NAMES if k in t.user_attrs), None)
        report.trials.append(
            TrialRow(
                t.number,
                t.state.name,
                t.value,
                dict(t.user_attrs.get(PARAMS_ATTR) or t.params),
                str(run_dir),
                epochs,
                t.user_attrs.get(BEST_EPOCH_ATTR),
                seconds,
                peak,
                alive,
                reason,
            )
        )
    report.finished = sum(r.state in ("COMPLETE", "PRUNED") for r in report.trials)
    complete = [r for r in report.trials if r.state == "COMPLETE" and r.value is not None]
    if complete:
        pick = max if report.direction == "maximize" else min
        best = pick(complete, key=lambda r: r.value if r.value is not None else math.nan)
        report.best = {"number": best.number, "value": best.value, "params": best.params, "run_dir": best.run_dir}
    return report


def run_dir_of(path: Path) -> Path:
    """`path` itself, or for a sweep's directory the run directory of its best trial (`load_model`, `export`)."""
    if not is_sweep_dir(path):
        return path
    best = build(path).best
    if best is None:
        raise CheckpointError(f"The sweep in {path} has no complete trial yet.")
    return Path(best["run_dir"])


def render(report: SweepReport, console: Any) -> None:
    """A table, one row per trial, the best one marked; then a summary line."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    best = report.best["number"] if report.best else None
    table = Table(
        title=f"segtrain sweep {escape(report.sweep_dir)} (study {escape(report.study)})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for header in ("trial", "state", report.metric, "best\nepoch", "epochs", "time s", "peak\nRSS MB"):
        table.add_column(header, justify="left" if header == "state" else "right", no_wrap=True)
    table.add_column("params", min_width=24, overflow="fold")  # the one column that wraps
    styles = {"COMPLETE": "", "PRUNED": "yellow", "FAIL": "red", "RUNNING": "cyan"}
    for r in report.trials:
        mark = "★ " if r.number == best else ""
        state = r.state.lower() + (" (now)" if r.state == "RUNNING" and r.alive else "")
        style = styles.get(r.state, "")
        table.add_row(
            f"{mark}{r.number}",
            f"[{style}]{state}[/]" if style else state,
            "–" if r.value is None else f"{r.value:.4g}",
            "–" if r.best_epoch is None else str(r.best_epoch),
            str(r.epochs_done),
            "–" if r.seconds is None else f"{r.seconds:.1f}",
            "–" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f}",
            escape(", ".join(f"{k}={_short(v)}" for k, v in r.params.items())),
        )
    console.print(table)
    for r in report.trials:
        if r.reason and r.state in ("FAIL", "PRUNED"):
            console.print(f"  trial {r.number} {r.state.lower()}: {r.reason}", highlight=False, markup=False)
    summary = f"{report.finished}/{report.trials_wanted} trials finished ({report.direction} {report.metric})"
    if report.best:
        summary += f"; best: trial {report.best['number']}, {report.metric} {report.best['value']:.4g}, " + ", ".join(
            f"{k}={_short(v)}" for k, v in report.best["params"].items()
        )
    console.print(summary, highlight=False, markup=False, soft_wrap=True)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def draw(report: SweepReport, out: Path) -> Path:
    """Three panels over the trials: the value (best so far drawn through it), peak RSS, and seconds."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 7), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    value_ax, rss_ax, seconds_ax = fig.subplots(3, 1, sharex=True)
    fig.suptitle(
        f"{Path(report.sweep_dir).name}: {report.finished}/{report.trials_wanted} trials finished",
        fontsize=11,
        x=0.01,
        horizontalalignment="left",
    )
    colors = {"COMPLETE": "#1f77b4", "PRUNED": "#ff7f0e", "FAIL": "#d62728", "RUNNING": "#7f7f7f"}
    for state, color in colors.items():
        points = [(r.number, r.value) for r in report.trials if r.state == state and r.value is not None]
        if points:
            value_ax.scatter(*zip(*points, strict=True), color=color, s=22, label=state.lower(), zorder=3)
    complete = [(r.number, r.value) for r in report.trials if r.state == "COMPLETE" and r.value is not None]
    if complete:
        pick = max if report.direction == "maximize" else min
        best, xs, ys = None, [], []
        for number, value in complete:
            best = value if best is None else pick(best, value)
            xs.append(number)
            ys.append(best)
        value_ax.step(xs, ys, where="post", color="#2ca02c", lw=1.5, label="best so far")
    value_ax.set_ylabel(report.metric)
    for ax, attr, label, color in (
        (rss_ax, "peak_rss_mb", "peak RSS (MB)", "#2ca02c"),
        (seconds_ax, "seconds", "seconds", "#9467bd"),
    ):
        points = [(r.number, getattr(r, attr)) for r in report.trials if getattr(r, attr) is not None]
        if points:
            ax.bar(*zip(*points, strict=True), color=color, width=0.7)
        ax.set_ylabel(label)
    seconds_ax.set_xlabel("trial")
    for ax in (value_ax, rss_ax, seconds_ax):
        ax.grid(axis="y", alpha=0.3)
    if value_ax.get_legend_handles_labels()[0]:
        value_ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(out, buffer.getvalue())
    return out

"""`segtrain report` and `segtrain status`: of a run, or of a sweep (one row per trial)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from segtrain.cli.app import command, err, errors, out
from segtrain.paths import CvPaths
from segtrain.search import cv_report
from segtrain.search import report as sweep_report
from segtrain.search.config import is_sweep_dir
from segtrain.telemetry import plot as run_plot
from segtrain.telemetry import render as run_render
from segtrain.telemetry.logs import load
from segtrain.telemetry.report import build_from
from segtrain.telemetry.status import read_status, render_status


@command
def report(
    run_dir: Path = typer.Argument(..., help="Run directory, or a sweep's directory."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the report as JSON (see segtrain.telemetry.schema.JSON_SCHEMA)."
    ),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        help="Also draw seconds per epoch, memory and boundary cost over the run (for a sweep: value, peak RSS "
        "and seconds per trial) into this PNG (needs: pip install 'segtrain[plot]').",
    ),
    storage: str | None = typer.Option(None, "--storage", help="A sweep's study database, where it has a password."),
) -> None:
    """Show a run's segments: time, seconds per epoch, slowdown, memory and boundary cost; or a sweep's trials.

    Works while the run trains and after it was killed.

    Example: segtrain report checkpoints/spirals --plot spirals.png
    """
    with errors():
        if is_sweep_dir(run_dir):
            _sweep_report(run_dir, as_json, plot, storage)
            return
        if _cv_report(run_dir, as_json):
            return
        logs = load(run_dir)
        rep = build_from(logs)
        if plot is not None:
            run_plot.require_matplotlib()
            run_plot.draw(logs, rep, plot)
    _show(rep, as_json, run_render.render, plot)


def _sweep_report(sweep_dir: Path, as_json: bool, plot: Path | None, storage: str | None) -> None:
    rep = sweep_report.build(sweep_dir, storage)
    if plot is not None:
        sweep_report.draw(rep, plot)
    _show(rep, as_json, sweep_report.render, plot)


def _show(rep: Any, as_json: bool, render: Callable[[Any, Any], None], plot: Path | None) -> None:
    """A report (a run's or a sweep's) as JSON or its table on stdout; where its plot went on stderr."""
    if as_json:
        print(json.dumps(rep.to_json(), indent=1))
    else:
        render(rep, out)
    if plot is not None:
        err.print(f"Plot written to {plot}", highlight=False, markup=False, soft_wrap=True)


def _cv_report(path: Path, as_json: bool) -> bool:
    """Show a cross-validation's folds if `path` holds one; whether it did."""
    if not CvPaths(path).manifest.is_file():
        return False
    rep = cv_report.build(path)
    if as_json:
        print(json.dumps(rep.to_json(), indent=1))
    else:
        cv_report.render(rep, out)
    return True


@command
def status(
    run_dir: Path = typer.Argument(..., help="Run directory, or a sweep's directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
    storage: str | None = typer.Option(None, "--storage", help="A sweep's study database, where it has a password."),
) -> None:
    """Where a run stands: epochs and segments done, newest complete checkpoint, whether its process is alive.

    Works while the run trains and after a crash (a run recorded as running whose process is gone is "crashed").
    On a sweep's directory: its trials' states and values.

    Example: segtrain status checkpoints/spirals
    """
    with errors():
        if is_sweep_dir(run_dir):
            rep = sweep_report.build(run_dir, storage)
            if as_json:
                print(json.dumps(rep.to_json(), indent=1))
            else:
                sweep_report.render(rep, out)
            return
        if _cv_report(run_dir, as_json):
            return
        st = read_status(run_dir)
    if as_json:
        print(json.dumps(st.to_json(), indent=1))
    else:
        render_status(st, out)

"""`segtrain report` and `segtrain status`: of a run, or of a sweep (one row per trial)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from segtrain.cli.app import command, err, errors, out


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
    from segtrain.search.config import is_sweep_dir

    with errors():
        if is_sweep_dir(run_dir):
            _sweep_report(run_dir, as_json, plot, storage)
            return
        if _cv_report(run_dir, as_json):
            return
        from segtrain.telemetry.logs import load
        from segtrain.telemetry.render import render
        from segtrain.telemetry.report import build_from

        logs = load(run_dir)
        rep = build_from(logs)
        if plot is not None:
            from segtrain.telemetry.plot import draw, require_matplotlib

            require_matplotlib()
            draw(logs, rep, plot)
    if as_json:
        print(json.dumps(rep.to_json(), indent=1))
    else:
        render(rep, out)
    if plot is not None:
        err.print(f"Plot written to {plot}", highlight=False, markup=False, soft_wrap=True)


def _sweep_report(sweep_dir: Path, as_json: bool, plot: Path | None, storage: str | None) -> None:
    from segtrain.search.report import build, draw, render

    rep = build(sweep_dir, storage)
    if plot is not None:
        draw(rep, plot)
    if as_json:
        print(json.dumps(rep.to_json(), indent=1))
    else:
        render(rep, out)
    if plot is not None:
        err.print(f"Plot written to {plot}", highlight=False, markup=False, soft_wrap=True)


def _cv_report(path: Path, as_json: bool) -> bool:
    """Show a cross-validation's folds if `path` holds one; whether it did."""
    from segtrain.search.cv import build, is_cv_dir, render

    if not is_cv_dir(path):
        return False
    rep = build(path)
    if as_json:
        print(json.dumps(rep.to_json(), indent=1))
    else:
        render(rep, out)
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
    from segtrain.search.config import is_sweep_dir

    with errors():
        if is_sweep_dir(run_dir):
            from segtrain.search.report import build, render

            rep = build(run_dir, storage)
            if as_json:
                print(json.dumps(rep.to_json(), indent=1))
            else:
                render(rep, out)
            return
        if _cv_report(run_dir, as_json):
            return
        from segtrain.telemetry.status import read_status, render_status

        st = read_status(run_dir)
    if as_json:
        print(json.dumps(st.to_json(), indent=1))
    else:
        render_status(st, out)

"""The `segtrain` command: a thin typer layer over `segtrain.api`.

Errors become exit codes here and only here: 0 done, 2 bad input, 75 stopped
by a signal and resumable, 1 anything else.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from segtrain.config import DEFAULT_SIGNALS
from segtrain.errors import ConfigError, SegtrainError
from segtrain.version import __version__

app = typer.Typer(
    help="Keep very long Keras training jobs fast, bounded in memory and resumable.\n\n"
    "Example: segtrain fit model.py --epochs 1000 --segment 50 --seed 0",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()


def _version(value: bool) -> None:
    if value:
        print(f"segtrain {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="segtrain: %(levelname)s: %(message)s")


def _fail(e: SegtrainError) -> None:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(e.exit_code)


def _crash(e: Exception, debug: bool) -> None:
    """An error from inside training (a callback, the backend): say what, exit 1, keep the checkpoints."""
    import traceback

    if debug:
        traceback.print_exception(e)
    if isinstance(e, OSError):
        _fail(
            SegtrainError(
                f"could not write {e.filename or 'to the run directory'}: {e.strerror or e}. "
                "The previous complete checkpoint is intact; free space or fix permissions, "
                "then run the same command again."
            )
        )
    _fail(
        SegtrainError(
            f"training failed: {type(e).__name__}: {e}\nThe newest complete checkpoint is kept; "
            "fix the cause and run the same command again to resume"
            + ("." if debug else " (--debug shows the traceback).")
        )
    )


def _finish(outcome, report: bool = True) -> None:
    from segtrain.telemetry.report import build, render

    if report:
        render(build(outcome.run_dir), out)
    style = "green" if outcome.exit_code == 0 else "yellow" if outcome.exit_code == 75 else "red"
    err.print(f"[{style}]{outcome.status}[/]: {outcome.message} ({outcome.run_dir})", highlight=False)
    raise typer.Exit(outcome.exit_code)


@app.command()
def fit(
    script: Path = typer.Argument(..., help="Training script defining build_model() and load_data()."),
    epochs: int = typer.Option(..., "--epochs", "-e", help="Total number of epochs."),
    segment: str = typer.Option(
        ...,
        "--segment",
        "-s",
        help="Epochs per segment (save, clear, reload between), "
        "or 'auto': a boundary wherever the time lost to slowdown exceeds a boundary's cost.",
    ),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Run directory [default: checkpoints/<script name>]."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed everything: segmented training then equals unsegmented bit for bit."
    ),
    isolation: str = typer.Option(
        "process",
        "--isolation",
        help="process: a fresh interpreter per segment; session: clear the Keras session in one process.",
    ),
    fmt: str = typer.Option(
        "keras",
        "--format",
        help="Checkpoint format: keras, h5 (.weights.h5 with optimizer) or savedmodel (tf.train.Checkpoint).",
    ),
    save_every: int | None = typer.Option(
        None, "--save-every", help="Also checkpoint every K epochs inside a segment."
    ),
    keep: int = typer.Option(2, "--keep", help="Complete checkpoints to keep."),
    export: Path | None = typer.Option(
        None, "--export", help="Write the final model here: a .keras file, or a SavedModel directory."
    ),
    prestart: bool = typer.Option(
        True, "--prestart/--no-prestart", help="Start the next worker while a segment trains."
    ),
    force: bool = typer.Option(
        False, "--force", help="Start over if RUN_DIR holds a run of another script or options."
    ),
    signals: str = typer.Option(
        ",".join(DEFAULT_SIGNALS), "--signals", help="Signals that stop training resumably (exit 75)."
    ),
    max_memory: float | None = typer.Option(
        None,
        "--max-memory",
        help="End a segment early once memory (device memory on a GPU, else RSS) exceeds this many MB.",
    ),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="A hyperparameter NAME=VALUE for the script's build_model(params) and "
        "load_data(params) (repeatable; VALUE is parsed as JSON, else kept as a string)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors in the script."),
) -> None:
    """Train SCRIPT's model for EPOCHS epochs in segments, saving, clearing and reloading between them.

    Running the same command again resumes an unfinished run; on a finished run it prints the report.

    Example: segtrain fit examples/spirals.py --epochs 12 --segment 4 --seed 0
    """
    from segtrain import api

    try:
        outcome = api.fit(
            script,
            epochs=epochs,
            segment=_segment(segment),
            run_dir=run_dir,
            seed=seed,
            isolation=isolation,
            format=fmt,
            save_every=save_every,
            keep=keep,
            export=export,
            prestart=prestart,
            force=force,
            signals=_signal_names(signals),
            max_memory=max_memory,
            params=parse_params(param),
            progress=progress,
            debug=debug,
        )
    except SegtrainError as e:
        _fail(e)
    except Exception as e:
        _crash(e, debug)
    _finish(outcome)


@app.command()
def resume(
    run_dir: Path = typer.Argument(..., help="Run directory of the run to go on with."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors in the script."),
) -> None:
    """Go on with a run from its newest complete checkpoint, with the options it was started with.

    Example: segtrain resume checkpoints/spirals
    """
    from segtrain import api

    try:
        outcome = api.resume(run_dir, progress=progress, debug=debug)
    except SegtrainError as e:
        _fail(e)
    except Exception as e:
        _crash(e, debug)
    _finish(outcome)


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="Run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (see segtrain.report.JSON_SCHEMA)."),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        help="Also draw seconds per epoch, memory and boundary cost "
        "over the run into this PNG (needs: pip install 'segtrain[plot]').",
    ),
) -> None:
    """Show a run's segments: time, seconds per epoch, slowdown, memory and boundary cost.

    Works while the run trains and after it was killed.

    Example: segtrain report checkpoints/spirals --plot spirals.png
    """
    import json

    from segtrain.telemetry import report as reports

    try:
        logs = reports.load(run_dir)
        rep = reports.build_from(logs)
        if plot is not None:
            from segtrain.telemetry.plot import draw, require_matplotlib

            require_matplotlib()
            draw(logs, rep, plot)
    except SegtrainError as e:
        _fail(e)
    if as_json:
        print(json.dumps(rep.to_json(), indent=1))
    else:
        reports.render(rep, out)
    if plot is not None:
        err.print(f"Plot written to {plot}", highlight=False, markup=False, soft_wrap=True)


@app.command()
def status(
    run_dir: Path = typer.Argument(..., help="Run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Where a run stands: epochs and segments done, newest complete checkpoint, whether its process is alive.

    Works while the run trains and after a crash (a run recorded as running whose process is gone is "crashed").

    Example: segtrain status checkpoints/spirals
    """
    import json

    from segtrain.telemetry.status import read_status, render_status

    try:
        st = read_status(run_dir)
    except SegtrainError as e:
        _fail(e)
    if as_json:
        print(json.dumps(st.to_json(), indent=1))
    else:
        render_status(st, out)


def _segment(text: str) -> int | str:
    """`--segment`: a number of epochs or `auto` (RunConfig says what is wrong with anything else)."""
    text = text.strip().lower()
    try:
        return int(text)
    except ValueError:
        return text


def parse_params(items: list[str]) -> dict[str, Any]:
    """`--param NAME=VALUE` options as a dict: VALUE parsed as JSON (`3`, `0.1`, `true`, `[1, 2]`), else a string."""
    params: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--param takes NAME=VALUE, such as --param units=64 or --param act=relu. Received: {item!r}")
        try:
            params[name.strip()] = json.loads(text)
        except ValueError:
            params[name.strip()] = text
    return params


def _signal_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip().upper() for n in text.split(",") if n.strip())
    return tuple(n if n.startswith("SIG") else "SIG" + n for n in names)


def main() -> None:
    app()

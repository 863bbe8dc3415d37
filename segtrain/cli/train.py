"""`segtrain fit` and `segtrain resume`."""

from __future__ import annotations

from pathlib import Path

import typer

from segtrain.backends.distribution import Distribute
from segtrain.cli import options as opt
from segtrain.cli.app import command, ending, err, errors, out
from segtrain.config import Format, Isolation
from segtrain.outcomes import RunOutcome


def finish(outcome: RunOutcome, quiet: bool) -> None:
    """The report's table and how the run ended; with --quiet, only an ending that is not a success.

    The table goes to stdout, except for a launched script's run (`segtrain run`), whose stdout is the
    script's own: there everything segtrain says goes to stderr.
    """
    from segtrain.telemetry.render import render
    from segtrain.telemetry.report import build

    if quiet and outcome.exit_code == 0:
        raise typer.Exit(0)
    if not quiet and outcome.writes:  # many hosts: process 0 reports the run
        render(build(outcome.run_dir), err if outcome.launched else out)
    ending(str(outcome.status), outcome.exit_code, outcome.message, outcome.run_dir)


@command
def fit(
    script: Path = typer.Argument(..., help="Training script defining build_model() and load_data()."),
    epochs: int = opt.EPOCHS,
    segment: str = opt.SEGMENT,
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Run directory [default: checkpoints/<script name>]."),
    seed: int | None = opt.SEED,
    isolation: Isolation = opt.ISOLATION,
    distribute: Distribute = opt.DISTRIBUTE,
    coordinator: str | None = opt.COORDINATOR,
    num_processes: int | None = opt.NUM_PROCESSES,
    process_id: int | None = opt.PROCESS_ID,
    peer_timeout: int = opt.PEER_TIMEOUT,
    fmt: Format = opt.FORMAT,
    save_every: int | None = opt.SAVE_EVERY,
    keep: int = opt.KEEP,
    export: Path | None = typer.Option(
        None, "--export", help="Write the final model here: a .keras file, or a SavedModel directory."
    ),
    prestart: bool = opt.PRESTART,
    force: bool = typer.Option(
        False, "--force", help="Start over if RUN_DIR holds a run of another script or options."
    ),
    signals: str = opt.SIGNALS,
    max_memory: float | None = opt.MAX_MEMORY,
    param: list[str] = opt.PARAM,
    tensorboard: str | None = opt.TENSORBOARD,
    progress: bool = opt.PROGRESS,
    verbose: bool = opt.VERBOSE,
    quiet: bool = opt.QUIET,
    debug: bool = opt.DEBUG,
) -> None:
    """Train SCRIPT's model for EPOCHS epochs in segments, saving, clearing and reloading between them.

    Running the same command again resumes an unfinished run; on a finished run it prints the report.

    Example: segtrain fit examples/spirals.py --epochs 12 --segment 4 --seed 0
    """
    from segtrain import api

    with errors(debug):
        outcome = api.fit(
            script,
            epochs=epochs,
            segment=opt.segment_length(segment),
            run_dir=run_dir,
            seed=seed,
            isolation=isolation.value,
            distribute=distribute.value,
            coordinator=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            peer_timeout=peer_timeout,
            format=fmt.value,
            save_every=save_every,
            keep=keep,
            export=export,
            prestart=prestart,
            force=force,
            signals=opt.signal_names(signals),
            max_memory=max_memory,
            params=opt.parse_params(param),
            tensorboard=tensorboard,
            progress=progress,
            verbosity=opt.verbosity(verbose, quiet),
            debug=debug,
        )
    finish(outcome, quiet)


@command
def resume(
    run_dir: Path = typer.Argument(..., help="Run directory of the run to go on with."),
    epochs: int | None = typer.Option(
        None, "--epochs", "-e", help="Train the run to this many epochs in all: extends a finished run."
    ),
    distribute: Distribute | None = typer.Option(
        None, "--distribute", help="none or data-parallel, as in `fit` [default: as the run was started]."
    ),
    coordinator: str | None = opt.COORDINATOR,
    num_processes: int | None = opt.NUM_PROCESSES,
    process_id: int | None = opt.PROCESS_ID,
    peer_timeout: int = opt.PEER_TIMEOUT,
    tensorboard: str | None = typer.Option(
        None,
        "--tensorboard",
        metavar="DIR|auto|off",
        help="TensorBoard scalars as in `fit` (they go on where they left off); 'off': write no more "
        "[default: as the run was started].",
    ),
    continue_stopped: bool = typer.Option(
        False,
        "--continue",
        help="Train on a run that a callback (EarlyStopping) stopped early, as a new fit() call would: "
        "patience starts afresh. Without it, a stopped run stays stopped.",
    ),
    progress: bool = opt.PROGRESS,
    verbose: bool = opt.VERBOSE,
    quiet: bool = opt.QUIET,
    debug: bool = opt.DEBUG,
) -> None:
    """Go on with a run from its newest complete checkpoint, with the options it was started with.

    A run that a callback stopped early stays stopped unless --continue is given.

    Example: segtrain resume checkpoints/spirals --epochs 24
    """
    from segtrain import api

    with errors(debug):
        outcome = api.resume(
            run_dir,
            epochs=epochs,
            distribute=None if distribute is None else distribute.value,
            coordinator=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            peer_timeout=peer_timeout,
            tensorboard=tensorboard,
            continue_stopped=continue_stopped,
            progress=progress,
            verbosity=opt.verbosity(verbose, quiet),
            debug=debug,
        )
    finish(outcome, quiet)

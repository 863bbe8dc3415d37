"""`segtrain run`: an ordinary training script in segments, as `torchrun` launches scripts.

As under a launcher, the script owns stdout: every worker's stdout is segtrain's stdout, its stderr segtrain's
stderr (`segtrain.worker.output`), and everything segtrain itself says (the progress bar, warnings, the
report's table, how the run ended) goes to stderr. So `segtrain run train.py > out.txt` holds what the script
printed, and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import typer

from segtrain.cli import options as opt
from segtrain.cli.app import command, errors
from segtrain.cli.train import finish
from segtrain.config import Format


@command
def run(
    script: Path = typer.Argument(..., help="A Keras training script that calls model.fit(...) once."),
    script_args: list[str] | None = typer.Argument(
        None, help="The script's own arguments, after --.", metavar="[-- ARGS]..."
    ),
    segment: str = typer.Option(
        "auto",
        "--segment",
        "-s",
        help="Epochs per segment, or 'auto': a boundary wherever the time lost to slowdown exceeds a boundary's cost.",
    ),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Run directory [default: checkpoints/<script name>]."),
    seed: int | None = opt.SEED,
    fmt: Format = opt.FORMAT,
    save_every: int | None = opt.SAVE_EVERY,
    keep: int = opt.KEEP,
    export: Path | None = typer.Option(
        None, "--export", help="Write the final model here: a .keras file, or a SavedModel directory."
    ),
    prestart: bool = opt.PRESTART,
    force: bool = typer.Option(
        False, "--force", help="Start over if RUN_DIR holds a run of another script or arguments."
    ),
    signals: str = opt.SIGNALS,
    max_memory: float | None = opt.MAX_MEMORY,
    tensorboard: str | None = opt.TENSORBOARD,
    progress: bool = opt.PROGRESS,
    verbose: bool = opt.VERBOSE,
    quiet: bool = opt.QUIET,
    debug: bool = opt.DEBUG,
) -> None:
    """Run an unmodified Keras script in segments, each in a fresh process: its model.fit(...) call trains them.

    Every worker runs SCRIPT from the top; its fit() call restores the run's state into the model, trains one
    segment with the script's own arguments (epochs, batch size, callbacks, validation) and saves. In the last
    segment's worker fit() returns the whole run's History and the script goes on. What the script does before
    fit() runs in every worker. Running the same command again resumes. The script's stdout is segtrain's stdout;
    segtrain's own output (progress, report) goes to stderr.

    Example: segtrain run train.py --segment 50 --seed 0 -- --learning-rate 0.01
    """
    from segtrain import api

    with errors(debug):
        outcome = api.run(
            script,
            segment=opt.segment_length(segment),
            script_args=script_args or [],
            run_dir=run_dir,
            seed=seed,
            format=fmt.value,
            save_every=save_every,
            keep=keep,
            export=export,
            prestart=prestart,
            force=force,
            signals=opt.signal_names(signals),
            max_memory=max_memory,
            tensorboard=tensorboard,
            progress=progress,
            verbosity=opt.verbosity(verbose, quiet),
            debug=debug,
        )
    finish(outcome, quiet)

"""`segtrain fit` and `segtrain resume`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from segtrain import api
from segtrain.cli import options as opt
from segtrain.cli.app import command, ending, err, errors, out
from segtrain.config import RunConfig
from segtrain.options import Command
from segtrain.outcomes import RunOutcome
from segtrain.telemetry.render import render
from segtrain.telemetry.report import build


def finish(outcome: RunOutcome, quiet: bool) -> None:
    """The report's table and how the run ended; with --quiet, only an ending that is not a success.

    The table goes to stdout, except for a launched script's run (`segtrain run`), whose stdout is the
    script's own: there everything segtrain says goes to stderr.
    """
    if quiet and outcome.exit_code == 0:
        raise typer.Exit(0)
    if not quiet and outcome.writes and not outcome.searched:  # many hosts: process 0 reports the run
        render(build(outcome.run_dir), err if outcome.launched else out)
    ending(str(outcome.status), outcome.exit_code, outcome.message, outcome.run_dir)


@command
@opt.takes(
    Command.FIT,
    RunConfig,
    head=[opt.argument("script", Path, help="Training script defining build_model() and load_data().")],
)
def fit(script: Path, **given: Any) -> None:
    """Train SCRIPT's model for EPOCHS epochs in segments, saving, clearing and reloading between them.

    Running the same command again resumes an unfinished run; on a finished run it prints the report.

    Example: segtrain fit examples/spirals.py --epochs 12 --segment 4 --seed 0
    """
    with errors(given["debug"]):
        outcome = api.fit(script, **opt.values(Command.FIT, RunConfig, given))
    finish(outcome, given["quiet"])


@command
@opt.takes(
    Command.RESUME, RunConfig, head=[opt.argument("run_dir", Path, help="Run directory of the run to go on with.")]
)
def resume(run_dir: Path, **given: Any) -> None:
    """Go on with a run from its newest complete checkpoint, with the options it was started with.

    A run that a callback stopped early stays stopped unless --continue is given.

    Example: segtrain resume checkpoints/spirals --epochs 24
    """
    with errors(given["debug"]):
        outcome = api.resume(run_dir, **opt.values(Command.RESUME, RunConfig, given))
    finish(outcome, given["quiet"])

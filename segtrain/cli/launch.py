"""`segtrain run`: an ordinary training script in segments, as `torchrun` launches scripts.

As under a launcher, the script owns stdout: every worker's stdout is segtrain's stdout, its stderr segtrain's
stderr (`segtrain.worker.output`), and everything segtrain itself says (the progress bar, warnings, the
report's table, how the run ended) goes to stderr. So `segtrain run train.py > out.txt` holds what the script
printed, and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segtrain import api
from segtrain.cli import options as opt
from segtrain.cli.app import command, errors
from segtrain.cli.train import finish
from segtrain.config import RunConfig
from segtrain.options import Command


@command
@opt.takes(
    Command.RUN,
    RunConfig,
    head=[
        opt.argument("script", Path, help="A Keras training script that calls model.fit(...)."),
        opt.argument(
            "script_args", list[str] | None, None, help="The script's own arguments, after --.", metavar="[-- ARGS]..."
        ),
    ],
)
def run(script: Path, script_args: list[str] | None, **given: Any) -> None:
    """Run an unmodified Keras script in segments, each in a fresh process: its model.fit(...) call trains them.

    Every worker runs SCRIPT from the top; its fit() call restores the run's state into the model, trains one
    segment with the script's own arguments (epochs, batch size, callbacks, validation) and saves. In the last
    segment's worker fit() returns the whole History and the script goes on. Each fit() call is a stage in
    segments of its own (fine-tuning after training a head: two stages, the second in RUN/stages/stage-2).
    What the script does before fit() runs in every worker. Running the same command again resumes. The
    script's stdout is segtrain's stdout, as `python SCRIPT` prints it; segtrain's own output (progress,
    report) goes to stderr.

    Example: segtrain run train.py --segment 50 --seed 0 -- --learning-rate 0.01
    """
    with errors(given["debug"]):
        outcome = api.run(script, script_args=script_args or [], **opt.values(Command.RUN, RunConfig, given))
    finish(outcome, given["quiet"])

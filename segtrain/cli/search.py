"""`segtrain sweep` and `segtrain cv`: many models in succession, each an isolated, resumable run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segtrain import api
from segtrain.cli import options as opt
from segtrain.cli.app import command, ending, errors, out
from segtrain.config import RunConfig
from segtrain.options import Command
from segtrain.search import cv_report
from segtrain.search import report as sweep_report
from segtrain.search.config import SweepConfig
from segtrain.search.cv_config import CvConfig


@command
@opt.takes(
    Command.SWEEP,
    SweepConfig,
    RunConfig,
    head=[
        opt.argument(
            "script", Path, help="Training script defining search_space(trial), build_model(params) and load_data()."
        )
    ],
)
def sweep(script: Path, **given: Any) -> None:
    """Search SCRIPT's hyperparameters with Optuna: every trial an isolated, segmented, resumable run.

    Running the same command again goes on: an interrupted trial resumes from its checkpoint, as the same trial.
    Several processes (or machines, with --storage) on one study share its trials.

    Example: segtrain sweep model.py --trials 40 --epochs 30 --segment 10 --metric val_accuracy --seed 0
    """
    with errors(given["debug"]):
        options = opt.values(Command.SWEEP, SweepConfig, given) | opt.values(Command.SWEEP, RunConfig, given)
        outcome = api.sweep(script, **options)
        sweep_report.render(sweep_report.build(outcome.sweep_dir, given["storage"]), out)
    ending(str(outcome.status), outcome.exit_code, outcome.message, outcome.sweep_dir)


@command
@opt.takes(
    Command.CV,
    CvConfig,
    RunConfig,
    head=[opt.argument("script", Path, help="Training script defining build_model() and load_data().")],
)
def cv(script: Path, **given: Any) -> None:
    """Cross-validate SCRIPT's model in K folds, each fold a segmented run in its own processes.

    In-memory arrays without validation data are split by segtrain (seeded, shuffled); a script that splits its
    data itself reads params["fold"] and params["folds"]. Running the same command again goes on.

    Example: segtrain cv model.py --folds 5 --epochs 20 --segment 10 --seed 0
    """
    with errors(given["debug"]):
        outcome = api.cv(script, **opt.values(Command.CV, CvConfig, given) | opt.values(Command.CV, RunConfig, given))
    cv_report.render(outcome.report, out)
    ending(str(outcome.status), outcome.exit_code, outcome.message, outcome.cv_dir)

"""`segtrain sweep` and `segtrain cv`: many models in succession, each an isolated, resumable run."""

from __future__ import annotations

from pathlib import Path

import typer

from segtrain.backends.distribution import Distribute
from segtrain.cli import options as opt
from segtrain.cli.app import command, ending, errors, out
from segtrain.config import Format, Isolation
from segtrain.search.study import Direction, Pruner, Sampler


@command
def sweep(
    script: Path = typer.Argument(
        ..., help="Training script defining search_space(trial), build_model(params) and load_data()."
    ),
    trials: int = typer.Option(
        ..., "--trials", "-n", help="Finished trials (complete or pruned) the study should have."
    ),
    epochs: int = opt.EPOCHS,
    segment: str = opt.SEGMENT,
    sweep_dir: Path | None = typer.Option(
        None,
        "--dir",
        help="Sweep directory [default: checkpoints/<script "
        "name>-sweep]; each trial is a run directory under DIR/trials/.",
    ),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="The study's database URL [default: SQLite in "
        "DIR/study.db], e.g. postgresql://user:pass@host/db to share it across "
        "machines.",
    ),
    study: str | None = typer.Option(None, "--study", help="The study's name [default: the script's name]."),
    metric: str = typer.Option(
        "val_loss", "--metric", help="The logged metric to optimise; reported after every epoch for pruning."
    ),
    direction: Direction | None = typer.Option(
        None, "--direction", help="[default: maximize for accuracy-like metrics, else minimize]."
    ),
    sampler: Sampler = typer.Option(Sampler.TPE, "--sampler", help="grid: from the script's `grid` dict."),
    pruner: Pruner = typer.Option(Pruner.MEDIAN, "--pruner", help="Stops a trial that does worse than the others."),
    jobs: int = typer.Option(
        1,
        "--jobs",
        "-j",
        help="Trials at once, each in its own workers (one GPU each where "
        "GPUs are visible and CUDA_VISIBLE_DEVICES is not set).",
    ),
    seed: int | None = typer.Option(
        None,
        "--seed",
        help="Every trial trains with this seed (trials differ only by their params), and the sampler is seeded too.",
    ),
    isolation: Isolation = opt.ISOLATION,
    distribute: Distribute = opt.DISTRIBUTE,
    fmt: Format = opt.FORMAT,
    save_every: int | None = opt.SAVE_EVERY,
    keep: int = opt.KEEP,
    prestart: bool = opt.PRESTART,
    force: bool = typer.Option(
        False, "--force", help="Start over if DIR holds a sweep with other settings (its trials and study are deleted)."
    ),
    signals: str = opt.SIGNALS,
    max_memory: float | None = opt.MAX_MEMORY,
    tensorboard: str | None = opt.TENSORBOARD,
    progress: bool = opt.PROGRESS,
    verbose: bool = opt.VERBOSE,
    quiet: bool = opt.QUIET,
    debug: bool = opt.DEBUG,
) -> None:
    """Search SCRIPT's hyperparameters with Optuna: every trial an isolated, segmented, resumable run.

    Running the same command again goes on: an interrupted trial resumes from its checkpoint, as the same trial.
    Several processes (or machines, with --storage) on one study share its trials.

    Example: segtrain sweep model.py --trials 40 --epochs 30 --segment 10 --metric val_accuracy --seed 0
    """
    from segtrain import api
    from segtrain.search.report import build, render

    with errors(debug):
        outcome = api.sweep(
            script,
            trials=trials,
            epochs=epochs,
            segment=opt.segment_length(segment),
            sweep_dir=sweep_dir,
            storage=storage,
            study=study,
            metric=metric,
            direction=None if direction is None else direction.value,
            sampler=sampler.value,
            pruner=pruner.value,
            jobs=jobs,
            seed=seed,
            isolation=isolation.value,
            distribute=distribute.value,
            format=fmt.value,
            save_every=save_every,
            keep=keep,
            prestart=prestart,
            force=force,
            signals=opt.signal_names(signals),
            max_memory=max_memory,
            tensorboard=tensorboard,
            progress=progress,
            verbosity=opt.verbosity(verbose, quiet),
            debug=debug,
        )
        render(build(outcome.sweep_dir, storage), out)
    ending(str(outcome.status), outcome.exit_code, outcome.message, outcome.sweep_dir)


@command
def cv(
    script: Path = typer.Argument(..., help="Training script defining build_model() and load_data()."),
    folds: int = typer.Option(..., "--folds", "-k", help="Number of folds (at least 2)."),
    epochs: int = opt.EPOCHS,
    segment: str = opt.SEGMENT,
    cv_dir: Path | None = typer.Option(
        None,
        "--dir",
        help="Directory [default: checkpoints/<script name>-cv]; each fold is a run directory under DIR/folds/.",
    ),
    param: list[str] = opt.PARAM,
    seed: int | None = opt.SEED,
    isolation: Isolation = opt.ISOLATION,
    fmt: Format = opt.FORMAT,
    save_every: int | None = opt.SAVE_EVERY,
    keep: int = opt.KEEP,
    prestart: bool = opt.PRESTART,
    force: bool = typer.Option(
        False, "--force", help="Start over if DIR holds a cross-validation with other settings (its folds are deleted)."
    ),
    signals: str = opt.SIGNALS,
    max_memory: float | None = opt.MAX_MEMORY,
    tensorboard: str | None = opt.TENSORBOARD,
    progress: bool = opt.PROGRESS,
    verbose: bool = opt.VERBOSE,
    quiet: bool = opt.QUIET,
    debug: bool = opt.DEBUG,
) -> None:
    """Cross-validate SCRIPT's model in K folds, each fold a segmented run in its own processes.

    In-memory arrays without validation data are split by segtrain (seeded, shuffled); a script that splits its
    data itself reads params["fold"] and params["folds"]. Running the same command again goes on.

    Example: segtrain cv model.py --folds 5 --epochs 20 --segment 10 --seed 0
    """
    from segtrain import api
    from segtrain.search.cv import render

    with errors(debug):
        outcome = api.cv(
            script,
            folds=folds,
            epochs=epochs,
            segment=opt.segment_length(segment),
            cv_dir=cv_dir,
            params=opt.parse_params(param),
            seed=seed,
            isolation=isolation.value,
            format=fmt.value,
            save_every=save_every,
            keep=keep,
            prestart=prestart,
            force=force,
            signals=opt.signal_names(signals),
            max_memory=max_memory,
            tensorboard=tensorboard,
            progress=progress,
            verbosity=opt.verbosity(verbose, quiet),
            debug=debug,
        )
    render(outcome.report, out)
    ending(str(outcome.status), outcome.exit_code, outcome.message, outcome.cv_dir)

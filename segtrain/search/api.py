"""The Python API of many models in succession: `sweep` and `cv` (also in `segtrain.api` and `segtrain`)."""

from __future__ import annotations

from pathlib import Path

from segtrain.config import RunConfig
from segtrain.options import Command, build, split
from segtrain.search.config import SweepConfig
from segtrain.search.cv import CvOutcome
from segtrain.search.cv import cv as run_cv
from segtrain.search.cv_config import CvConfig
from segtrain.search.sweep import SweepOutcome
from segtrain.search.sweep import sweep as run_sweep
from segtrain.telemetry.scalars import setting as tensorboard_setting


def sweep(
    script: str | Path,
    *,
    tensorboard: str | Path | bool | None = None,
    **options: object,
) -> SweepOutcome:
    """Search the hyperparameters of `script` (its `search_space(trial)`) with Optuna, each trial a segtrain run.

    Every trial trains in fresh worker processes, segmented and exactly
    resumable like `fit`; its run directory is `sweep_dir/trials/trial-NNNN`.
    Calling `sweep` again goes on with the study: a trial that was interrupted
    resumes from its checkpoint, as the same trial. Several processes (and
    machines, with a shared `storage`) on one study share its trials.

    Example:

    ```python
    outcome = segtrain.sweep("model.py", trials=20, epochs=10, segment=5, metric="val_accuracy", seed=0)
    print(outcome.study.best_params, outcome.best_run_dir)
    model = segtrain.load_model(outcome.sweep_dir)  # the best trial's
    ```

    Args:
        script: the training script; defines `search_space(trial) -> dict` and takes the params in
            `build_model(params)` (and `load_data(params)`, `callbacks(params)` if it wants).
        tensorboard: each trial's scalars as a TensorBoard run of its own: `"auto"` in each trial's
            directory, or a folder with a subfolder per trial (`DIR/trial-0003/segtrain`).
        **options: `SweepConfig`'s fields and the `RunConfig` fields that `segtrain sweep` takes, by name
            (those below), passed into them whole.

    Keyword Args:
        trials: finished trials (complete or pruned) the study should have.
        epochs: of every trial, as in `fit`.
        segment: of every trial, as in `fit`.
        sweep_dir: defaults to `checkpoints/<script name>-sweep`.
        storage: the study's database URL; defaults to SQLite in `sweep_dir/study.db`.
        study: the study's name; defaults to the script's name.
        metric: the logged metric to optimise (a trial's value is its best epoch's).
        direction: `"minimize"` or `"maximize"`; defaults to maximize for accuracy-like metrics.
        sampler: `"tpe"`, `"random"`, `"grid"` (the script's `grid` dict) or `"cmaes"`.
        pruner: `"median"`, `"hyperband"` or `"none"`; the metric is reported after every epoch.
        jobs: trials at once, each in its own processes (one GPU each where GPUs are visible).
        seed: every trial's seed, and the sampler's.
        isolation: as in `fit`, for every trial; so are `distribute`, `format`, `save_every`, `keep`,
            `prestart`, `start`, `signals`, `max_memory` and `debug`.
        force: start over if `sweep_dir` holds a sweep with other settings.
        progress: show each trial's progress bar.

    Returns:
        A `SweepOutcome` with the status, exit code, the Optuna study and the best trial's run directory.
    """
    own, given = split(options, Command.SWEEP, "sweep", SweepConfig, RunConfig)
    run = build(RunConfig, dict(given, script=Path(script), tensorboard=tensorboard_setting(tensorboard)))
    return run_sweep(build(SweepConfig, dict(own, run=run)), progress=run.shows_progress)


def cv(
    script: str | Path,
    *,
    tensorboard: str | Path | bool | None = None,
    **options: object,
) -> CvOutcome:
    """K-fold cross-validation of `script`: each fold a segtrain run of its own, in its own processes.

    For in-memory arrays without validation data, segtrain makes the folds
    (seeded, shuffled, the same split for every fold); a script that splits
    its data itself reads `params["fold"]` and `params["folds"]`. Calling `cv`
    again goes on with the folds that have not finished.

    Example:

    ```python
    outcome = segtrain.cv("model.py", folds=5, epochs=20, segment=10, seed=0)
    print(outcome.report.mean["val_loss"], outcome.report.std["val_loss"])
    ```

    Args:
        script: the training script, as in `fit`.
        tensorboard: each fold's scalars as a TensorBoard run of its own (`DIR/fold-2/segtrain`; `"auto"`:
            in each fold's directory).
        **options: `CvConfig`'s fields and the `RunConfig` fields that `segtrain cv` takes, by name (those
            below), passed into them whole.

    Keyword Args:
        folds: K, at least 2. Each fold's run directory is `cv_dir/folds/fold-K`.
        cv_dir: defaults to `checkpoints/<script name>-cv`.
        params: passed to the script's functions, with `fold` and `folds` added.
        epochs: as in `fit`, for every fold; so are `segment` and the other options of `fit` that
            `segtrain cv` takes.

    Returns:
        A `CvOutcome`: status, exit code, and the report (each fold's final metrics, their mean and std).
    """
    own, given = split(options, Command.CV, "cv", CvConfig, RunConfig)
    run = build(RunConfig, dict(given, script=Path(script), tensorboard=tensorboard_setting(tensorboard)))
    return run_cv(build(CvConfig, dict(own, run=run)), progress=run.shows_progress)

"""The Python API of many models in succession: `sweep` and `cv` (also in `segtrain.api` and `segtrain`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segtrain.config import DEFAULT_SIGNALS, RunConfig
from segtrain.telemetry.scalars import setting as tensorboard_setting

if TYPE_CHECKING:
    from segtrain.search.cv import CvOutcome
    from segtrain.search.sweep import SweepOutcome


def sweep(
    script: str | Path,
    *,
    trials: int,
    epochs: int,
    segment: int | str,
    sweep_dir: str | Path | None = None,
    storage: str | None = None,
    study: str | None = None,
    metric: str = "val_loss",
    direction: str | None = None,
    sampler: str = "tpe",
    pruner: str = "median",
    jobs: int = 1,
    seed: int | None = None,
    isolation: str = "process",
    distribute: str = "none",
    format: str = "keras",
    save_every: int | None = None,
    keep: int = 2,
    prestart: bool = True,
    force: bool = False,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    max_memory: float | None = None,
    tensorboard: str | Path | bool | None = None,
    progress: bool = True,
    verbosity: str = "normal",
    debug: bool = False,
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
        trials: finished trials (complete or pruned) the study should have.
        epochs, segment: of every trial, as in `fit`.
        sweep_dir: defaults to `checkpoints/<script name>-sweep`.
        storage: the study's database URL; defaults to SQLite in `sweep_dir/study.db`.
        study: the study's name; defaults to the script's name.
        metric: the logged metric to optimise (a trial's value is its best epoch's).
        direction: `"minimize"` or `"maximize"`; defaults to maximize for accuracy-like metrics.
        sampler: `"tpe"`, `"random"`, `"grid"` (the script's `grid` dict) or `"cmaes"`.
        pruner: `"median"`, `"hyperband"` or `"none"`; the metric is reported after every epoch.
        jobs: trials at once, each in its own processes (one GPU each where GPUs are visible).
        seed: every trial's seed, and the sampler's.
        isolation, distribute, format, save_every, keep, prestart, signals, max_memory, debug: as in `fit`,
            for every trial.
        tensorboard: each trial's scalars as a TensorBoard run of its own: `"auto"` in each trial's
            directory, or a folder with a subfolder per trial (`DIR/trial-0003/segtrain`).
        force: start over if `sweep_dir` holds a sweep with other settings.
        progress: show each trial's progress bar.

    Returns:
        A `SweepOutcome` with the status, exit code, the Optuna study and the best trial's run directory.
    """
    from segtrain.search.config import SweepConfig
    from segtrain.search.sweep import sweep as run_sweep

    run = RunConfig(
        script=Path(script),
        epochs=epochs,
        segment=segment,
        seed=seed,
        isolation=isolation,
        distribute=distribute,
        format=format,
        save_every=save_every,
        keep=keep,
        prestart=prestart,
        signals=tuple(signals),
        max_memory=max_memory,
        debug=debug,
        verbosity=verbosity,
        tensorboard=tensorboard_setting(tensorboard),
    )
    cfg = SweepConfig(
        run=run,
        trials=trials,
        sweep_dir=None if sweep_dir is None else Path(sweep_dir),
        storage=storage,
        study=study,
        metric=metric,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
        jobs=jobs,
        force=force,
    )
    return run_sweep(cfg, progress=progress and verbosity != "quiet")


def cv(
    script: str | Path,
    *,
    folds: int,
    epochs: int,
    segment: int | str,
    cv_dir: str | Path | None = None,
    params: dict[str, Any] | None = None,
    seed: int | None = None,
    isolation: str = "process",
    format: str = "keras",
    save_every: int | None = None,
    keep: int = 2,
    prestart: bool = True,
    force: bool = False,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    max_memory: float | None = None,
    tensorboard: str | Path | bool | None = None,
    progress: bool = True,
    verbosity: str = "normal",
    debug: bool = False,
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
        folds: K, at least 2. Each fold's run directory is `cv_dir/folds/fold-K`.
        cv_dir: defaults to `checkpoints/<script name>-cv`.
        params: passed to the script's functions, with `fold` and `folds` added.
        tensorboard: each fold's scalars as a TensorBoard run of its own (`DIR/fold-2/segtrain`; `"auto"`:
            in each fold's directory).
        The others: as in `fit`, for every fold.

    Returns:
        A `CvOutcome`: status, exit code, and the report (each fold's final metrics, their mean and std).
    """
    from segtrain.search.cv import CvConfig
    from segtrain.search.cv import cv as run_cv

    run = RunConfig(
        script=Path(script),
        epochs=epochs,
        segment=segment,
        seed=seed,
        isolation=isolation,
        format=format,
        save_every=save_every,
        keep=keep,
        prestart=prestart,
        signals=tuple(signals),
        max_memory=max_memory,
        debug=debug,
        params=dict(params or {}),
        verbosity=verbosity,
        tensorboard=tensorboard_setting(tensorboard),
    )
    cv_cfg = CvConfig(run=run, folds=folds, cv_dir=None if cv_dir is None else Path(cv_dir), force=force)
    return run_cv(cv_cfg, progress=progress and verbosity != "quiet")

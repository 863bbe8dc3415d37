"""The Python API: everything the CLI does, callable from Python with explicit keyword arguments."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segtrain.config import DEFAULT_SIGNALS, RunConfig
from segtrain.outcomes import RunOutcome
from segtrain.run.directory import load_config

if TYPE_CHECKING:
    from segtrain.run.loading import Exported
    from segtrain.search.cv import CvOutcome
    from segtrain.search.sweep import SweepOutcome


def fit(
    script: str | Path,
    *,
    epochs: int,
    segment: int | str,
    run_dir: str | Path | None = None,
    seed: int | None = None,
    isolation: str = "process",
    format: str = "keras",
    save_every: int | None = None,
    keep: int = 2,
    export: str | Path | None = None,
    prestart: bool = True,
    force: bool = False,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    max_memory: float | None = None,
    params: dict[str, Any] | None = None,
    progress: bool = True,
    verbosity: str = "normal",
    debug: bool = False,
) -> RunOutcome:
    """Train the model that `script` defines for `epochs` epochs, in segments of `segment`.

    Training in segments continues exactly as uninterrupted training would: with
    a `seed`, the final weights and optimizer state are bitwise equal whatever
    the segment length or isolation. Calling `fit` again on an unfinished run
    resumes it; on a finished one it returns at once.

    Example:

    ```python
    import segtrain

    outcome = segtrain.fit("examples/spirals.py", epochs=12, segment=4, seed=0)
    assert outcome.exit_code == 0
    model = segtrain.load_model(outcome.run_dir)
    ```

    Args:
        script: path of the training script.
        epochs: total epochs.
        segment: epochs per segment, or `"auto"` (see `segtrain.training.boundaries`).
        run_dir: the run directory. Defaults to `checkpoints/<script name>`.
        seed: seeds everything and makes a segmented run bitwise equal to an unsegmented one.
        isolation: `"process"` (a fresh worker per segment) or `"session"` (clear the Keras session).
        format: checkpoint format: `"keras"`, `"h5"` or `"savedmodel"`.
        save_every: also checkpoint every this many epochs inside a segment.
        keep: complete checkpoints to keep.
        export: write the final model here (`.keras`, else a SavedModel directory).
        prestart: start the next worker while a segment trains.
        force: start over if `run_dir` holds a run of another script or other options.
        signals: names of the signals that stop training resumably.
        max_memory: end a segment early once memory exceeds this many MB.
        params: hyperparameters for the script's functions that take an argument (`build_model(params)`).
        progress: show the progress bar.
        verbosity: `"quiet"` (errors only), `"normal"` or `"verbose"` (the backend's start-up lines too).
        debug: tracebacks for errors in the script.

    Returns:
        A `RunOutcome` with the status, exit code and epochs done.

    Raises:
        SegtrainError: bad options or script (`exit_code` 2), a locked or
            damaged run directory, a failed save (1).
    """
    cfg = RunConfig(
        script=Path(script),
        epochs=epochs,
        segment=segment,
        run_dir=None if run_dir is None else Path(run_dir),
        seed=seed,
        isolation=isolation,
        format=format,
        save_every=save_every,
        keep=keep,
        export=None if export is None else Path(export),
        prestart=prestart,
        force=force,
        signals=tuple(signals),
        max_memory=max_memory,
        debug=debug,
        params=dict(params or {}),
        verbosity=verbosity,
    )
    return _train(cfg, progress and verbosity != "quiet")


def resume(
    run_dir: str | Path,
    *,
    segment: int | str | None = None,
    isolation: str | None = None,
    keep: int | None = None,
    export: str | Path | None = None,
    prestart: bool | None = None,
    signals: Sequence[str] | None = None,
    max_memory: float | None = None,
    progress: bool = True,
    verbosity: str = "normal",
    debug: bool = False,
) -> RunOutcome:
    """Go on with the run in `run_dir` from its newest complete checkpoint, with its saved options.

    The options here may differ from the run's (where boundaries fall does not
    change the result); `None` keeps the run's own. Options that change the
    result (epochs, seed, format, save_every) cannot change on resume, nor can
    the script: a script whose SHA-256 is not the manifest's is refused. Where
    the script's recorded path is gone (a run directory moved to another
    machine), the run's own copy of it (`RUN/script/`) trains.
    """
    cfg = load_config(Path(run_dir))
    changes: dict[str, Any] = {
        "segment": segment,
        "isolation": isolation,
        "keep": keep,
        "prestart": prestart,
        "max_memory": max_memory,
        "export": None if export is None else Path(export),
        "signals": None if signals is None else tuple(signals),
    }
    cfg = dataclasses.replace(
        cfg, debug=debug, verbosity=verbosity, **{k: v for k, v in changes.items() if v is not None}
    )
    return _train(cfg, progress and verbosity != "quiet")


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
    format: str = "keras",
    save_every: int | None = None,
    keep: int = 2,
    prestart: bool = True,
    force: bool = False,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    max_memory: float | None = None,
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
        isolation, format, save_every, keep, prestart, signals, max_memory, debug: as in `fit`, for every trial.
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
        format=format,
        save_every=save_every,
        keep=keep,
        prestart=prestart,
        signals=tuple(signals),
        max_memory=max_memory,
        debug=debug,
        verbosity=verbosity,
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
    )
    cv_cfg = CvConfig(run=run, folds=folds, cv_dir=None if cv_dir is None else Path(cv_dir), force=force)
    return run_cv(cv_cfg, progress=progress and verbosity != "quiet")


def _train(cfg: RunConfig, progress: bool) -> RunOutcome:
    from segtrain.run import loop  # imports Keras: `import segtrain` does not, so status and report stay light

    return loop.fit(cfg, progress=progress)


def load_model(run_dir: str | Path, *, checkpoint: str | None = None) -> Any:
    """The model of the run's newest complete checkpoint (or of `checkpoint`), compiled, with its optimizer state.

    Loading a run imports its training script, as unpickling runs code: load
    only run directories you trust. The script imported is the one the run
    trained with: the original where its SHA-256 is still the manifest's, else
    the run's own copy (`RUN/script/`), which stands in where the original is
    gone (a run directory moved to another machine) or changed (with a logged
    warning that names both). So custom classes the script registers are
    known, in a fresh process too.

    No training data is read, except for a checkpoint in the `h5` or
    `savedmodel` format (they store no architecture) of a subclassed model that
    `build_model()` returns unbuilt: then `load_data()` is called for one batch
    to create its variables. (The `keras` format, and any model built by
    `build_model()`, need none.)

    Args:
        run_dir: the run directory, or a sweep's directory: then its best trial's model.
        checkpoint: the name of a complete checkpoint in the run directory (`ckpt-000004`)
            instead of the newest.

    Raises:
        SegtrainError: not a run directory, or `checkpoint` not a complete checkpoint
            (`exit_code` 2); no complete checkpoint, or one that does not load back (1).
    """
    from segtrain.run import loading

    return loading.load(loading.run_dir_of(Path(run_dir)), checkpoint)[0]


def export(run_dir: str | Path, path: str | Path, *, checkpoint: str | None = None) -> Exported:
    """Write a run's model for use elsewhere: a `.keras` file, or (any other path) a SavedModel directory for serving.

    The model is the one `load_model(run_dir, checkpoint=checkpoint)` returns:
    the newest complete checkpoint's, or the named one's; for a sweep's
    directory, the best trial's. The file appears atomically, replacing what
    was at `path`. Exporting imports the run's script, as `load_model` does.

    Example:

    ```python
    segtrain.export("checkpoints/spirals", "spirals.keras")
    segtrain.export("checkpoints/spirals", "serving/spirals/1", checkpoint="ckpt-000008")
    ```

    Args:
        run_dir: the run directory, or a sweep's directory.
        path: where to write: a path ending in `.keras`, else a SavedModel directory (TensorFlow only).
        checkpoint: the name of a complete checkpoint in the run directory instead of the newest.

    Returns:
        An `Exported`: the path written, the run and the checkpoint it came from.

    Raises:
        SegtrainError: as `load_model`; a failed write (`exit_code` 1).
    """
    from segtrain.run import loading

    return loading.export(Path(run_dir), Path(path), checkpoint)

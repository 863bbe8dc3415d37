"""The Python API: everything the CLI does, callable from Python with explicit keyword arguments."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segtrain.config import DEFAULT_SIGNALS, RunConfig
from segtrain.errors import CheckpointError
from segtrain.outcomes import RunOutcome
from segtrain.run.directory import load_config
from segtrain.run.paths import read_run
from segtrain.state import checkpoint, model_state

if TYPE_CHECKING:
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
    result (epochs, seed, format, save_every) cannot change on resume.
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


def load_model(run_dir: str | Path) -> Any:
    """The model of the run's newest complete checkpoint, compiled, with its optimizer state.

    `run_dir` may be a sweep's directory: then the best trial's model. Works
    in a fresh process: the run's script is imported first, so custom classes
    it registers are known.
    """
    from segtrain.training.data import Fold, prepare
    from segtrain.training.script import TrainingScript
    from segtrain.training.segment import first_inputs

    run_dir = _best_trial_if_sweep(Path(run_dir))
    paths, manifest = read_run(run_dir)
    ckpt = checkpoint.latest(paths)
    if ckpt is None:
        raise CheckpointError(f"{run_dir} holds no complete checkpoint yet.")
    script = TrainingScript.load(manifest["script"]["path"], params=manifest["config"].get("params"))

    def sample() -> Any:
        fold = manifest["config"].get("fold")
        data = prepare(
            script.call("load_data"),
            script.fit_kwargs,
            manifest["data_seed"],
            script.path,
            None if fold is None else Fold(**fold),
        )
        return first_inputs(data.train.fit_input(0, 1))

    model = checkpoint.load_model_files(ckpt, script.build_model, script.custom_objects, sample)
    model_state.verify(model, ckpt.state["fingerprint"], f"Checkpoint {ckpt.path}")
    model_state.restore_seed_states(model, ckpt.state["rng"])
    return model


def _best_trial_if_sweep(path: Path) -> Path:
    from segtrain.search.config import is_sweep_dir

    if not is_sweep_dir(path):
        return path
    from segtrain.search.report import build

    best = build(path).best
    if best is None:
        raise CheckpointError(f"The sweep in {path} has no complete trial yet.")
    return Path(best["run_dir"])

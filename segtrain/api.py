"""The Python API: everything the CLI does, callable from Python with explicit keyword arguments.

Sweeps and cross-validation are in `segtrain.search.api`, and here too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from segtrain.config import EPOCHS_FROM_SCRIPT, RunConfig
from segtrain.errors import ScriptError
from segtrain.options import AUTO, Command, build, fields_of, per_call_defaults
from segtrain.outcomes import RunOutcome
from segtrain.runs import launch, loading
from segtrain.runs.directory import load_config
from segtrain.runs.loading import Exported
from segtrain.runs.verify import Verification, verify_checkpoints
from segtrain.search.api import cv, sweep
from segtrain.search.report import run_dir_of
from segtrain.telemetry.scalars import setting as tensorboard_setting
from segtrain.training.references import locate
from segtrain.training.script import check_fit_kwargs

__all__ = ["cv", "export", "fit", "load_model", "resume", "run", "sweep", "verify"]


def fit(
    script: str | Path | None = None,
    *,
    build_model: Callable[..., Any] | None = None,
    load_data: Callable[..., Any] | None = None,
    callbacks: Callable[..., Any] | None = None,
    fit_kwargs: dict[str, Any] | None = None,
    tensorboard: str | Path | bool | None = None,
    **options: object,
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

    Or with the functions themselves, from the code you have (they must be defined at the top level of a
    module, or of the main script, whose `segtrain.fit` call then sits under `if __name__ == "__main__":`):

    ```python
    segtrain.fit(build_model=build_model, load_data=load_data, fit_kwargs={"batch_size": 64}, epochs=100, segment=10)
    ```

    Args:
        script: the training script: a path, or a dotted module name (`mypkg.train`).
        build_model: the script's `build_model` itself, instead of `script` (see `segtrain.training.script`
            for what each function returns). Workers import the functions by name.
        load_data: the script's `load_data` itself, instead of `script`.
        callbacks: the script's `callbacks` itself, instead of `script` (optional).
        fit_kwargs: `fit` arguments with the functions (a script has its own `fit_kwargs`).
        tensorboard: write segtrain's telemetry as TensorBoard scalars to this folder's `segtrain/` run;
            `True` or `"auto"`: `run_dir/tensorboard` (docs/telemetry.md, "TensorBoard").
        **options: the `RunConfig` fields that `segtrain fit` takes, by name (those below), passed into it
            whole: it checks them (another name is a TypeError, as for any function).

    Keyword Args:
        epochs: total epochs.
        segment: epochs per segment, or `"auto"` (see `segtrain.training.boundaries`).
        run_dir: the run directory. Defaults to `checkpoints/<script name>`.
        seed: seeds everything and makes a segmented run bitwise equal to an unsegmented one.
        isolation: `"process"` (a fresh worker per segment) or `"session"` (clear the Keras session).
        distribute: `"data-parallel"`: each segment over every local device, on the backend's own engine
            (`segtrain.backends.distribution`); `fit_kwargs`' batch size is the global batch.
        coordinator: many hosts on JAX, one process each, started alike: `"HOST:PORT"` of process 0;
            without it and the next two, from Keras' `KERAS_DISTRIBUTION_*` variables or Slurm's `srun`
            (`segtrain.backends.hosts`).
        num_processes: many hosts: how many processes train the run.
        process_id: many hosts: this process's id, 0 to `num_processes - 1`.
        peer_timeout: many hosts: seconds to wait for the others to join, or a lost one's heartbeat.
        format: checkpoint format: `"keras"`, `"h5"` or `"savedmodel"`.
        save_every: also checkpoint every this many epochs inside a segment.
        keep: complete checkpoints to keep.
        export: write the final model here (`.keras`, else a SavedModel directory).
        prestart: start the next worker while a segment trains.
        start: how each worker begins: `"fork"` (from the run's zygote) or `"spawn"` (a fresh interpreter).
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
    source = locate(script, build_model=build_model, load_data=load_data, callbacks=callbacks)
    check_fit_kwargs(fit_kwargs or {}, "fit_kwargs")
    given = fields_of(RunConfig, Command.FIT, options, "fit")
    own = {"module": source.module, "functions": source.functions, "fit_kwargs": dict(fit_kwargs or {})}
    cfg = build(RunConfig, dict(given, script=source.path, tensorboard=tensorboard_setting(tensorboard), **own))
    cfg = cfg.with_hosts()
    return _train(cfg, cfg.shows_progress)


def run(
    script: str | Path,
    *,
    segment: int | str = AUTO,
    tensorboard: str | Path | bool | None = None,
    **options: object,
) -> RunOutcome:
    """Run an ordinary Keras training script in segments, each in a fresh worker, like `torchrun` runs scripts.

    Every worker runs `script` from the top with `script_args` as its
    `sys.argv[1:]`. Its `model.fit(...)` call (on any compiled
    `keras.Model`) trains the worker's segment: the run's state is restored
    into that model (weights, optimizer, RNG, callbacks, epoch), the segment
    trains with the script's own arguments (epochs, batch size, callbacks,
    validation data or split, shuffle), it is saved, and the worker ends. In
    the worker of the last segment, `fit` returns the whole `History` and
    the script goes on (evaluate, save, print). A script that calls `fit`
    again (fine-tuning after training a head) trains each call as a stage,
    in segments of its own, in `RUN/stages/stage-N`; a worker that reaches
    a stage trained already gets its model and `History` back at once. What
    the script does before the stage a worker trains runs again in it; its
    output is shown once.

    The guarantees of `fit` hold: with `seed` (set before the script runs;
    segtrain owns the order of in-memory arrays), the final model is bitwise
    equal to one segment; calling `run` again resumes an unfinished run, and
    on a complete one runs the script once more with `fit` returning the
    trained model at once.

    Example:

    ```python
    outcome = segtrain.run("train.py", segment=50, seed=0, script_args=["--lr", "0.01"])
    ```

    Args:
        script: a Python file that calls `model.fit(...)`.
        segment: epochs per segment, or `"auto"` (the default).
        tensorboard: as in `fit` (segtrain's scalars beside the script's own TensorBoard callback, where it
            has one).
        **options: the `RunConfig` fields that `segtrain run` takes, by name (those below).

    Keyword Args:
        script_args: the script's command-line arguments.
        run_dir: as in `fit`; so are `seed`, `format`, `save_every`, `keep`, `export`, `prestart`, `start`,
            `force`, `signals`, `max_memory`, `progress`, `verbosity` and `debug`.

    Raises:
        SegtrainError: bad options; a script that fails or never calls `fit` (`exit_code` 2).
    """
    given = fields_of(RunConfig, Command.RUN, options, "run")
    launched = {"epochs": EPOCHS_FROM_SCRIPT, "launched": True, "tensorboard": tensorboard_setting(tensorboard)}
    cfg = build(RunConfig, dict(given, script=Path(script), segment=segment, **launched))
    if not cfg.script.is_file():
        raise ScriptError(f"Training script not found: {cfg.script}")
    return launch.run(cfg, progress=cfg.shows_progress)


def resume(
    run_dir: str | Path,
    *,
    tensorboard: str | Path | bool | None = None,
    **changes: object,
) -> RunOutcome:
    """Go on with the run in `run_dir` from its newest complete checkpoint, with its saved options.

    The options here (`**changes`: the `RunConfig` fields whose flag allows it on resume: epochs, segment,
    distribute, isolation, keep, export, prestart, signals, max_memory, continue_stopped, progress, verbosity,
    debug, the many-hosts options) may differ from the run's (where boundaries fall does not
    change the result); `None` keeps the run's own. `epochs` extends the run,
    finished or not (with nothing in the script that depends on the total, the
    result is bitwise that of a run started with `epochs`); fewer than it has
    trained are refused. Options that change the result (seed, format,
    save_every) cannot change on resume, nor can the script: a script whose
    SHA-256 is not the manifest's is refused. Where the script's recorded path
    is gone (a run directory moved to another machine), the run's own copy of
    it (`RUN/script/`) trains. `tensorboard`:
    as in `fit` (the scalars go on where they left off), or `False` to write no more. Many hosts: as in
    `fit`, on every host (they are this process's place, not the run's).

    A run that a callback stopped early (EarlyStopping, TerminateOnNaN, a sweep's pruner) stays stopped:
    `resume` returns at once and changes nothing. `continue_stopped=True` trains it on, to `epochs`
    (or the run's own), exactly as one process that calls `fit` again with the same model and callbacks
    would: the callbacks' `on_train_begin` runs again, so EarlyStopping's patience starts afresh.

    Example:

    ```python
    outcome = segtrain.resume("checkpoints/spirals")  # stopped at epoch 6 of 40: returns at once
    outcome = segtrain.resume("checkpoints/spirals", epochs=60, continue_stopped=True)  # trains epochs 7-60
    ```
    """
    given = fields_of(RunConfig, Command.RESUME, changes, "resume")
    changed = {name: value for name, value in given.items() if value is not None}
    # This call's requests (verbosity, debug, --continue, progress) start afresh, not from the run's.
    cfg = build(partial(dataclasses.replace, load_config(Path(run_dir))), dict(per_call_defaults(RunConfig), **changed))
    if tensorboard is not None:
        cfg = dataclasses.replace(cfg, tensorboard=tensorboard_setting(tensorboard))
    cfg = cfg.with_hosts()
    return _train(cfg, cfg.shows_progress)


def _train(cfg: RunConfig, progress: bool) -> RunOutcome:
    """The run of `cfg`: a launched script's stage after stage (`runs.launch`), else its segments (`runs.loop`)."""
    from segtrain.runs import launch, loop  # imports Keras: `import segtrain` does not, so status and report stay light

    return launch.run(cfg, progress=progress) if cfg.launched else loop.fit(cfg, progress=progress)


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
    return loading.load(run_dir_of(Path(run_dir)), checkpoint)[0]


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
    return loading.export(run_dir_of(Path(run_dir)), Path(path), checkpoint)


def verify(run_dir: str | Path) -> Verification:
    """Check every byte of a run's checkpoints against their recorded checksums (`segtrain verify`).

    `status` checks sizes only; this reads every file. The result lists each checkpoint (complete, or damaged
    and why), the one a resume would go on from, and `exit_code`: 0 where all are complete, 1 where any is damaged.
    Raises SegtrainError (`exit_code` 2) where `run_dir` holds no run.
    """
    return verify_checkpoints(Path(run_dir))

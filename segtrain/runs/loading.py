"""A run's model in any process, for `load_model` and `export`: its script first, then one of its checkpoints.

The script is imported first (custom classes it registers become known): the
original where its SHA-256 is still the manifest's, else the run's copy
(`runs.script_copy.to_load`). Training data is read only where a checkpoint
format that stores no architecture (`h5`, `savedmodel`) meets a subclassed
model that `build_model()` leaves unbuilt: its variables only exist once a
batch has gone through it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segtrain.errors import CheckpointError, ConfigError, ScriptError
from segtrain.paths import CKPT_PREFIX, RunPaths
from segtrain.runs import script_copy
from segtrain.state import checkpoint, model_state
from segtrain.state.export import export as write
from segtrain.state.manifest import RunManifest, read_run
from segtrain.training.data import Fold, prepare
from segtrain.training.references import import_failure, on_file
from segtrain.training.script import TrainingScript

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Exported:
    """What `segtrain.export` wrote, and from which run and checkpoint."""

    path: Path
    run_dir: Path  # the run exported: a sweep's best trial where a sweep directory was given
    checkpoint: str  # the checkpoint's name, e.g. "ckpt-000012-end"
    epoch: int  # epochs trained into it
    batch: int  # batches of the next epoch besides (a checkpoint written on a signal), else 0
    kind: str  # "keras" (a .keras file) or "savedmodel" (a SavedModel directory for serving)


def load(run_dir: Path, checkpoint_name: str | None = None) -> tuple[Any, checkpoint.Checkpoint]:
    """The model of the run's newest complete checkpoint (or of `checkpoint_name`), and that checkpoint."""
    paths, manifest = read_run(run_dir)
    ckpt = named(paths, checkpoint_name) if checkpoint_name is not None else checkpoint.latest(paths)
    if ckpt is None:
        raise CheckpointError(f"{run_dir} holds no complete checkpoint yet.")
    config = manifest.config
    if config.get("launched"):
        model = _load_launched(run_dir, ckpt)
    else:
        model = _load_scripted(paths, manifest, ckpt)
    model_state.verify(model, ckpt.state.fingerprint, f"Checkpoint {ckpt.path}")
    model_state.restore_seed_states(model, ckpt.state.rng)
    return model, ckpt


def _load_scripted(paths: RunPaths, manifest: RunManifest, ckpt: checkpoint.Checkpoint) -> Any:
    """The model through the run's script: its `build_model()` where the format needs it, its custom objects."""
    from segtrain.training.segment import first_batch  # deferred: imports Keras

    config = manifest.config
    script = _script(paths, manifest)

    def sample() -> tuple:  # only to build an unbuilt subclassed model, or its own optimizers (load_model_files)
        fold = config.get("fold")
        data = prepare(
            script.call("load_data"),
            {**script.fit_kwargs, **config.get("fit_kwargs", {})},
            manifest.seed,
            script.path,
            None if fold is None else Fold(**fold),
        )
        return first_batch(data.train.fit_input(0, 1))

    return checkpoint.load_model_files(ckpt, script.build_model, script.custom_objects, sample)


def _script(paths: RunPaths, manifest: RunManifest) -> Any:
    """The run's training code: by name where it trained by name (a module, functions), else its file.

    Code by name that does not import here (a run directory moved to a machine
    without the package) is taken from the run's copy of its file, where every
    function the run names lives in that file.
    """
    config = manifest.config
    params = config.get("params")
    module, functions = config.get("module"), config.get("functions") or {}
    if not (module or functions):
        return TrainingScript.load(script_copy.to_load(paths, manifest), params=params)
    try:
        return TrainingScript.load(config["script"], params=params, module=module, functions=functions)
    except ScriptError as e:
        copy = script_copy.copy_of(paths, manifest)
        rebased = on_file(functions, copy) if functions and copy is not None else None
        if not import_failure(e) or copy is None or not copy.is_file() or (functions and rebased is None):
            raise
        log.warning("%s; loading with the run's copy of its script, %s.", str(e).splitlines()[0], copy)
        return TrainingScript.load(copy, params=params, functions=rebased)


def _load_launched(run_dir: Path, ckpt: checkpoint.Checkpoint) -> Any:
    """A `segtrain run` run's model: from the checkpoint alone, which must hold its architecture (`.keras`).

    Such a script defines no `build_model()`, and is never run to load it.
    """
    if not ckpt.format.stores_architecture:
        raise ConfigError(
            f"{run_dir} was trained by `segtrain run` in the {ckpt.format.name} format, which stores no architecture, "
            "and its script builds the model only as it runs: load the run's checkpoint into the script's own "
            "model (model.load_weights), or train with --format keras (the default) to load it anywhere."
        )
    try:
        model = ckpt.format.load(ckpt.model_path, {})
    except Exception as e:
        raise CheckpointError(
            f"{ckpt.path} does not load without its script ({type(e).__name__}: {e}). Custom layers must be "
            "registered with keras.saving.register_keras_serializable in a module that is imported first."
        ) from e
    return model


def named(paths: RunPaths, name: str) -> checkpoint.Checkpoint:
    """The complete checkpoint called `name`; else a ConfigError (exit 2) that lists the complete ones."""
    path = paths.root / name
    if name != Path(name).name or not name.startswith(CKPT_PREFIX) or not path.is_dir():
        why = "no such checkpoint"
    else:
        ok, why = checkpoint.is_complete(path)
        if ok:
            return checkpoint.Checkpoint.read(path)
    complete = [c.path.name for c in checkpoint.committed(paths) if checkpoint.is_complete(c.path)[0]]
    raise ConfigError(
        f"{name} is not a complete checkpoint of {paths.root} ({why}). "
        + (f"Its complete checkpoints: {', '.join(complete)}." if complete else "It has no complete checkpoint yet.")
    )


def export(run_dir: Path, path: Path, checkpoint_name: str | None = None) -> Exported:
    """Write the model of `run_dir` to `path`: `.keras`, else a SavedModel (a sweep's: `search.report.run_dir_of`)."""
    model, ckpt = load(run_dir, checkpoint_name)
    write(model, path)
    kind = "keras" if path.suffix == ".keras" else "savedmodel"
    return Exported(path, run_dir, ckpt.path.name, ckpt.epoch, ckpt.batch, kind)

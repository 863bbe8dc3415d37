"""A run's model in any process, for `load_model` and `export`: its script first, then one of its checkpoints.

The script is imported first (custom classes it registers become known): the
original where its SHA-256 is still the manifest's, else the run's copy
(`run.script_copy.to_load`). Training data is read only where a checkpoint
format that stores no architecture (`h5`, `savedmodel`) meets a subclassed
model that `build_model()` leaves unbuilt: its variables only exist once a
batch has gone through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segtrain.errors import CheckpointError, ConfigError
from segtrain.run import script_copy
from segtrain.run.paths import CKPT_PREFIX, RunPaths, read_run
from segtrain.state import atomic, checkpoint, model_state


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
    from segtrain.training.data import Fold, prepare
    from segtrain.training.script import TrainingScript
    from segtrain.training.segment import first_inputs

    paths, manifest = read_run(run_dir)
    ckpt = named(paths, checkpoint_name) if checkpoint_name is not None else checkpoint.latest(paths)
    if ckpt is None:
        raise CheckpointError(f"{run_dir} holds no complete checkpoint yet.")
    script = TrainingScript.load(script_copy.to_load(paths, manifest), params=manifest["config"].get("params"))

    def sample() -> Any:  # called only to build an unbuilt subclassed model (load_model_files)
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
    return model, ckpt


def named(paths: RunPaths, name: str) -> checkpoint.Checkpoint:
    """The complete checkpoint called `name`; else a ConfigError (exit 2) that lists the complete ones."""
    path = paths.root / name
    if name != Path(name).name or not name.startswith(CKPT_PREFIX) or not path.is_dir():
        why = "no such checkpoint"
    else:
        ok, why = checkpoint.is_complete(path)
        if ok:
            return checkpoint.Checkpoint(path, atomic.read_json(path / checkpoint.STATE_FILE))
    complete = [c.path.name for c in checkpoint.committed(paths) if checkpoint.is_complete(c.path)[0]]
    raise ConfigError(
        f"{name} is not a complete checkpoint of {paths.root} ({why}). "
        + (f"Its complete checkpoints: {', '.join(complete)}." if complete else "It has no complete checkpoint yet.")
    )


def run_dir_of(path: Path) -> Path:
    """`path` itself, or for a sweep's directory the run directory of its best trial."""
    from segtrain.search.config import is_sweep_dir

    if not is_sweep_dir(path):
        return path
    from segtrain.search.report import build

    best = build(path).best
    if best is None:
        raise CheckpointError(f"The sweep in {path} has no complete trial yet.")
    return Path(best["run_dir"])


def export(run_dir: Path, path: Path, checkpoint_name: str | None = None) -> Exported:
    """Write the model of `run_dir` (a sweep's: its best trial's) to `path`: `.keras`, else a SavedModel."""
    from segtrain.state.export import export as write

    run_dir = run_dir_of(run_dir)
    model, ckpt = load(run_dir, checkpoint_name)
    write(model, path)
    kind = "keras" if path.suffix == ".keras" else "savedmodel"
    return Exported(path, run_dir, ckpt.path.name, ckpt.epoch, ckpt.batch, kind)

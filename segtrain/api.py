"""The Python API: everything the CLI does, callable from Python."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segtrain.state import checkpoint, model_state
from segtrain.config import RunConfig
from segtrain.errors import CheckpointError, ConfigError
from segtrain.run.directory import load_config
from segtrain.run.paths import RunPaths, read_manifest
from segtrain.run.loop import RunOutcome
from segtrain.run.loop import fit as _run


def fit(script: str | Path, epochs: int, segment: int | str, progress: bool = True, **options: Any) -> RunOutcome:
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
        segment: epochs per segment, or `"auto"` (see `segtrain.boundaries`).
        progress: show the progress bar. Defaults to `True`.
        **options: the other fields of `RunConfig` (run_dir, seed, isolation,
            format, save_every, keep, export, prestart, force, signals,
            max_memory, debug).

    Returns:
        A `RunOutcome` with the status, exit code and epochs done.
    """
    return _run(RunConfig(script=Path(script), epochs=epochs, segment=segment, **options), progress=progress)


def resume(run_dir: str | Path, progress: bool = True, **overrides: Any) -> RunOutcome:
    """Go on with the run in `run_dir` from its newest complete checkpoint, with its saved options."""
    cfg = load_config(Path(run_dir))
    for key, value in overrides.items():
        setattr(cfg, key, value)
    cfg.validate()
    return _run(cfg, progress=progress)


def load_model(run_dir: str | Path) -> Any:
    """The model of the run's newest complete checkpoint, compiled, with its optimizer state.

    Works in a fresh process: the run's script is imported first, so custom
    classes it registers are known.
    """
    from segtrain.training.data import prepare
    from segtrain.training.script import TrainingScript
    from segtrain.training.segment import first_inputs

    paths = RunPaths(Path(run_dir))
    manifest = read_manifest(paths) if paths.root.is_dir() else None
    if manifest is None:
        raise ConfigError(f"{run_dir} is not a segtrain run directory (no manifest.json).")
    ckpt = checkpoint.latest(paths)
    if ckpt is None:
        raise CheckpointError(f"{run_dir} holds no complete checkpoint yet.")
    script = TrainingScript.load(manifest["script"]["path"])

    def sample():
        data = prepare(script.call("load_data"), script.fit_kwargs, manifest["data_seed"], script.path)
        return first_inputs(data.train.fit_input(0, 1))

    model = checkpoint.load_model_files(ckpt, script.build_model, script.custom_objects, sample)
    model_state.verify(model, ckpt.state["fingerprint"], f"Checkpoint {ckpt.path}")
    model_state.restore_seed_states(model, ckpt.state["rng"])
    return model

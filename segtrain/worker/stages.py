"""Where a launched script's run stands, stage by stage (`segtrain run`: each `fit` call is a stage of its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segtrain.errors import CheckpointError
from segtrain.paths import RunPaths
from segtrain.state import checkpoint
from segtrain.worker.protocol import Assignment


def assigned(assignment: Assignment | None, stage: Path) -> bool:
    """Whether `assignment` is for `stage`'s run directory."""
    return assignment is not None and Path(assignment.run_dir).resolve() == stage.resolve()


def stage_trained(root: RunPaths, stage: int) -> Any:
    """The checkpoint that ended `stage` of a launched script's run, where that stage ended and the next began."""
    if not RunPaths(root.stage(stage + 1)).manifest.is_file():
        return None
    newest = checkpoint.latest(RunPaths(root.stage(stage)))
    return newest if newest is not None and newest.final else None


def final_checkpoint(ctx: Any, assignment: Assignment) -> Any:
    """The checkpoint a complete stage's assignment names: the model the rest of the script gets."""
    ref = assignment.checkpoint
    ckpt = None if ref is None else checkpoint.named_or_latest(ctx.paths, ref.name, ref.committed_here)
    if ckpt is None:
        raise CheckpointError(f"{ctx.paths.root} holds no complete checkpoint to load the trained model from.")
    return ckpt


def checkpoint_history(ctx: Any, name: str | None) -> dict[str, list[float]]:
    """The history the checkpoint called `name` holds (empty where there is none)."""
    ckpt = None if name is None else checkpoint.named_or_latest(ctx.paths, name, True)
    return {} if ckpt is None else ckpt.state.history

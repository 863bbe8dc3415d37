"""Training state that no Keras format saves, and the check that a reload is whole.

* RNG: every `SeedGenerator` state (Dropout, noise, a custom layer's own). Keras
  lists them in `model.variables` but not in `model.weights`, and no format
  saves them; without them a reloaded Dropout draws other masks.
* Metric state, for a resume in the middle of an epoch.
* A fingerprint (CRC-32) of every optimizer variable and weight, recorded at
  save and compared after load: Keras' loader skips mismatched optimizer
  variables with only a warning, and that must be an error here.
"""

from __future__ import annotations

import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from segtrain.errors import CheckpointError


def _weight_ids(model: Any) -> set[int]:
    return {id(v) for v in model.weights}


def seed_states(model: Any) -> list[dict[str, Any]]:
    """The state of every SeedGenerator in `model`, in a stable order."""
    ids = _weight_ids(model)
    return [{"path": v.path, "value": np.asarray(v.numpy()).tolist()} for v in model.variables if id(v) not in ids]


def restore_seed_states(model: Any, saved: list[dict[str, Any]]) -> None:
    ids = _weight_ids(model)
    current = [v for v in model.variables if id(v) not in ids]
    if len(current) != len(saved):
        raise CheckpointError(
            f"The model has {len(current)} random-seed states but the checkpoint holds {len(saved)}: "
            "the model's architecture changed since the checkpoint was written."
        )
    for var, entry in zip(current, saved, strict=True):
        value = np.asarray(entry["value"], dtype=var.dtype)
        if tuple(value.shape) != tuple(var.shape):
            raise CheckpointError(f"Seed state {entry['path']} has shape {value.shape}, expected {var.shape}.")
        var.assign(value)


def metric_states(model: Any) -> list[list]:
    return [np.asarray(v.numpy()).tolist() for v in model.metrics_variables]


def restore_metric_states(model: Any, saved: list[list]) -> None:
    variables = model.metrics_variables
    if len(variables) != len(saved):
        raise CheckpointError(f"The model has {len(variables)} metric variables but the checkpoint holds {len(saved)}.")
    for var, value in zip(variables, saved, strict=True):
        var.assign(np.asarray(value, dtype=var.dtype))


def _crc(var: Any) -> int:
    return zlib.crc32(np.ascontiguousarray(var.numpy()).view(np.uint8).ravel().data)


def _checksums(variables: list, pool: ThreadPoolExecutor) -> list[list]:
    return [[v.path, crc] for v, crc in zip(variables, pool.map(_crc, variables), strict=True)]


def fingerprint(model: Any) -> dict[str, Any]:
    """Iterations and a checksum per optimizer variable and per weight.

    zlib releases the GIL while it sums, so threads spread a large model's
    checksums over the cores, which are idle at a boundary.
    """
    opt = model.optimizer
    with ThreadPoolExecutor(max_workers=4) as pool:
        return {
            "iterations": int(opt.iterations.numpy()),
            "optimizer": _checksums(opt.variables, pool),
            "weights": _checksums(model.weights, pool),
        }


def verify(model: Any, expected: dict[str, Any], where: str) -> None:
    """Raise CheckpointError unless `model` holds exactly what was saved."""
    found = fingerprint(model)
    if found["iterations"] != expected["iterations"]:
        raise CheckpointError(
            f"{where}: optimizer.iterations is {found['iterations']} after loading, "
            f"{expected['iterations']} when saved: the optimizer state did not load."
        )
    for kind in ("optimizer", "weights"):
        got, want = found[kind], expected[kind]
        if len(got) != len(want):
            raise CheckpointError(f"{where}: {len(got)} {kind} variables after loading, {len(want)} when saved.")
        for (path, crc), (saved_path, saved_crc) in zip(got, want, strict=True):
            if crc != saved_crc:
                raise CheckpointError(
                    f"{where}: {kind} variable {path} (saved as {saved_path}) did not load back "
                    "as saved. The checkpoint and the model do not match."
                )

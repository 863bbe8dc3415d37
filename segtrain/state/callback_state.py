"""The state of callbacks, carried across segment boundaries.

Each segment re-creates the script's callbacks, and Keras' callbacks reset
their state in `on_train_begin` (to allow reuse across `fit` calls). segtrain
saves their state with each checkpoint and sets it back after `on_train_begin`,
so that a patience of 10 with segments of 5 still triggers and a "best" is not
forgotten at a boundary.

Built-in callbacks are handled here. A user callback takes part by defining

    def get_state(self) -> dict: ...          # JSON-serialisable
    def set_state(self, state: dict) -> None: ...
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from segtrain.errors import CheckpointError

# Attributes that decide future behaviour, per built-in callback class name.
_BUILTIN_ATTRS: dict[str, tuple[str, ...]] = {
    "EarlyStopping": ("wait", "stopped_epoch", "best", "best_epoch"),
    "ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
    "ModelCheckpoint": ("best",),
    "TensorBoard": ("_global_train_batch", "_global_test_batch"),
    "SaveBestEpoch": ("best_value",),  # KerasTuner's: the best epoch's weights, across boundaries
}
_ARRAY_LIST_ATTRS: dict[str, tuple[str, ...]] = {"EarlyStopping": ("best_weights",)}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float) or np.isscalar(value) or (hasattr(value, "shape") and value.shape == ()):
        f = float(np.asarray(value))
        return f if math.isfinite(f) else repr(f)  # "inf", "-inf", "nan"
    return value


def _from_json(value: Any) -> Any:
    if value in ("inf", "-inf", "nan"):
        return float(value)
    return value


def _builtin_name(cb: Any) -> str | None:
    for cls in type(cb).__mro__:
        if cls.__module__.startswith("keras") and cls.__name__ in (_BUILTIN_ATTRS.keys() | {"CSVLogger"}):
            return cls.__name__
    return None


def capture(callbacks: list) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The states of `callbacks`, as JSON plus named arrays (saved to an .npz)."""
    states, arrays = [], {}
    for i, cb in enumerate(callbacks):
        entry: dict[str, Any] = {"class": type(cb).__name__, "state": None}
        name = _builtin_name(cb)
        if callable(getattr(cb, "get_state", None)):
            entry["state"] = cb.get_state()
        elif name == "CSVLogger":
            entry["state"] = {"started": True}
        elif name is not None:
            entry["state"] = {a: _jsonable(getattr(cb, a, None)) for a in _BUILTIN_ATTRS[name]}
            for attr in _ARRAY_LIST_ATTRS.get(name, ()):
                value = getattr(cb, attr, None)
                entry["state"][attr] = None if value is None else len(value)
                for j, arr in enumerate(value or ()):
                    arrays[f"cb{i}.{attr}.{j}"] = np.asarray(arr)
        states.append(entry)
    return states, arrays


def prepare(callbacks: list, states: list[dict[str, Any]] | None) -> None:
    """Before `fit`: settings that must hold from `on_train_begin` on (CSVLogger appends)."""
    for cb, entry in zip(callbacks, states or (), strict=False):  # no states: a new run
        if _builtin_name(cb) == "CSVLogger" and entry.get("state"):
            cb.append = True


def restore(callbacks: list, states: list[dict[str, Any]], arrays: Any) -> None:
    """Set saved states back, after the callbacks' own `on_train_begin` has run."""
    if len(states) != len(callbacks) or any(
        e["class"] != type(cb).__name__ for cb, e in zip(callbacks, states, strict=False)
    ):
        saved = [e["class"] for e in states]
        now = [type(cb).__name__ for cb in callbacks]
        raise CheckpointError(
            f"`callbacks()` now returns {now}, but the checkpoint was written with {saved}. "
            "Return the same callbacks in the same order to resume."
        )
    for i, (cb, entry) in enumerate(zip(callbacks, states, strict=True)):
        state = entry["state"]
        if state is None:
            continue
        name = _builtin_name(cb)
        if callable(getattr(cb, "set_state", None)):
            cb.set_state(state)
        elif name in _BUILTIN_ATTRS:
            for attr in _BUILTIN_ATTRS[name]:
                if attr in state:
                    setattr(cb, attr, _from_json(state[attr]))
            for attr in _ARRAY_LIST_ATTRS.get(name, ()):
                count = state.get(attr)
                if count is not None:
                    setattr(cb, attr, [arrays[f"cb{i}.{attr}.{j}"] for j in range(count)])

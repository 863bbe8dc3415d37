"""A checkpoint's `state.json`: what a checkpoint holds besides the model, typed, versioned, read and written here.

`CheckpointState` is the one definition of that file. A state.json written
before it had a version (segtrain up to 32995aa) has no "version" key: it is
version 1, and a key it lacks takes its default here. A version newer than
`VERSION` was written by a newer segtrain and is refused (exit 2) rather than
half understood. Keys this version does not know are kept (`extra`) and written
back unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segtrain.errors import ConfigError
from segtrain.outcomes import SegmentOutcome
from segtrain.state import atomic

VERSION = 1  # what this segtrain writes; a state.json without "version" is version 1


@dataclass(frozen=True)
class CheckpointState:
    """Everything `state.json` records: where the checkpoint stands, its files, and the state no format keeps."""

    format: str  # the checkpoint format's name (`segtrain.config.Format`)
    epoch: int  # epochs trained
    batch: int = 0  # batches of the next epoch trained (a checkpoint inside an epoch)
    final: bool = False  # written after `fit` (after callbacks' on_train_end)
    files: dict[str, str] = field(default_factory=dict)  # file name -> checksum ("crc32:...")
    sizes: dict[str, int] = field(default_factory=dict)  # file name -> bytes
    fingerprint: dict[str, Any] = field(default_factory=dict)  # JSON (`model_state.fingerprint`)
    rng: list[dict[str, Any]] = field(default_factory=list)  # JSON (`model_state.seed_states`)
    global_rng: dict[str, str] | None = None  # the backend's global generator (`model_state.global_rng_state`)
    callbacks: list[dict[str, Any]] | None = None  # JSON (`callback_state.capture`)
    history: dict[str, list[float]] = field(default_factory=dict)  # the whole run's Keras history so far
    steps_per_epoch: int | None = None
    segment: int = -1  # the index of the segment that wrote it
    outcome: SegmentOutcome | None = None  # a final checkpoint's: how the run ended
    stop_reason: str | None = None
    pruned: bool = False  # stopped by the job's hook (a sweep's pruner), not by the script's callbacks
    metrics: list[Any] | None = None  # the compiled metrics' running state (a checkpoint inside an epoch)
    created: float | None = None
    version: int = VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they were

    @classmethod
    def from_json(cls, data: object, where: str = "state.json") -> CheckpointState:
        """Parse a state.json's object; ValueError where it is not one, ConfigError where a newer segtrain wrote it."""
        if not isinstance(data, dict):
            raise ValueError(f"{where} is not a JSON object")
        version = data.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"{where}: version {version!r} is not an integer")
        if version > VERSION:
            raise ConfigError(
                f"{where} was written by a newer segtrain (checkpoint state version {version}; this segtrain "
                f"reads up to {VERSION}). Upgrade segtrain to go on with this run."
            )
        for key in ("format", "epoch", "files"):
            if key not in data:
                raise ValueError(f"{where} has no {key!r}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("outcome") is not None:
            values["outcome"] = SegmentOutcome(values["outcome"])
        for key, default in (("batch", 0), ("final", False), ("pruned", False), ("segment", -1)):
            if values.get(key) is None:
                values[key] = default  # a key written as null by a writer that had no value for it
        values["format"] = str(getattr(values["format"], "value", values["format"]))
        values["version"] = version
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        data["outcome"] = None if self.outcome is None else self.outcome.value
        data["format"] = str(getattr(self.format, "value", self.format))  # a `Format` member: its name
        data["version"] = VERSION
        return {**self.extra, **data}


def read_state(path: Path) -> CheckpointState:
    """The state.json at `path`: OSError or ValueError where it is missing or does not parse."""
    return CheckpointState.from_json(atomic.read_json(path), str(path))


def write_state(path: Path, state: CheckpointState) -> None:
    atomic.write_json(path, state.to_json())

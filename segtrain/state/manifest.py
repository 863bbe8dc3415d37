"""A run's manifest (`RUN_DIR/manifest.json`): typed, versioned, read and written here, its status moved by a table.

`RunManifest` is the one definition of the file. One written before it had a
version (segtrain up to 32995aa) has no "version" key: it is version 1, and a key
it lacks takes its default. A newer version is refused (exit 2). Keys this
version does not know are kept and written back unchanged.

A run's status changes only through `RunManifest.transition`, which checks
`TRANSITIONS` (as Optuna's storages refuse to update a finished trial): a run
that ended (FINISHED, STOPPED) trains again only for a stated reason, and one
that runs ends once. The writes below (`start`, `end`, `fail`, `repair`,
`record_epochs`, `record_script`) each read the manifest on disk, change their
own fields and write it back: the options a run was started with stay as they were.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from segtrain.errors import ConfigError, SegtrainError
from segtrain.outcomes import RunStatus
from segtrain.paths import RunPaths
from segtrain.state import atomic

VERSION = 1  # what this segtrain writes; a manifest without "version" is version 1


class Reason(str, Enum):
    """Why a status changes: most moves are ordinary; leaving an ended run, or repairing one, needs its reason."""

    ORDINARY = "ordinary"
    EXTENDED = "extended"  # a finished run given more epochs trains on
    CONTINUED = "continued"  # `resume --continue`: a stopped run trains on
    REPLAYED = "replayed"  # `segtrain run`: an ended run's script runs again (its fit trains nothing)
    FELL_BACK = "fell back"  # the checkpoint that ended the run is damaged: it goes on from the one before
    REPAIRED = "repaired"  # a final checkpoint proves the run ended; a kill -9 (or a full disk) lost the record

    def __str__(self) -> str:
        return str(self.value)


S, R = RunStatus, Reason
# (from, to) -> the reasons that allow the move; any other move raises `TransitionError`.
TRANSITIONS: dict[tuple[RunStatus, RunStatus], frozenset[Reason]] = {
    (S.NEW, S.RUNNING): frozenset({R.ORDINARY}),
    (S.RUNNING, S.RUNNING): frozenset({R.ORDINARY}),  # its process died (CRASHED): another takes it over
    (S.CRASHED, S.RUNNING): frozenset({R.ORDINARY}),
    (S.INTERRUPTED, S.RUNNING): frozenset({R.ORDINARY}),
    (S.FAILED, S.RUNNING): frozenset({R.ORDINARY}),
    (S.RUNNING, S.FINISHED): frozenset({R.ORDINARY, R.REPAIRED}),
    (S.RUNNING, S.STOPPED): frozenset({R.ORDINARY, R.REPAIRED}),
    (S.RUNNING, S.INTERRUPTED): frozenset({R.ORDINARY}),
    (S.RUNNING, S.FAILED): frozenset({R.ORDINARY}),
    (S.FINISHED, S.RUNNING): frozenset({R.EXTENDED, R.REPLAYED, R.FELL_BACK}),
    (S.STOPPED, S.RUNNING): frozenset({R.CONTINUED, R.REPLAYED, R.FELL_BACK}),
    (S.INTERRUPTED, S.FINISHED): frozenset({R.REPAIRED}),
    (S.INTERRUPTED, S.STOPPED): frozenset({R.REPAIRED}),
    (S.FAILED, S.FINISHED): frozenset({R.REPAIRED}),
    (S.FAILED, S.STOPPED): frozenset({R.REPAIRED}),
}
del S, R


class TransitionError(SegtrainError):
    """A status change that `TRANSITIONS` does not allow: a bug in segtrain, never the user's input."""


@dataclass(frozen=True)
class ScriptRecord:
    """The run's training script: where it was, its SHA-256, and the run's copy (None: a run made before copies)."""

    path: str
    sha256: str
    copy: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"path": self.path, "sha256": self.sha256, "copy": self.copy}


@dataclass(frozen=True)
class RunManifest:
    """Everything manifest.json records: the run's options, its script, where it stands."""

    config: dict[str, Any]  # RunConfig's JSON (`RunConfig.to_json`, read back by `RunConfig.from_json`)
    script: ScriptRecord
    data_seed: int | None = None  # the data order's seed: the run's --seed, or one drawn once for it
    segtrain_version: str = ""
    created: float = 0.0
    updated: float | None = None
    host: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)  # segtrain, Python, Keras, backends
    status: RunStatus = RunStatus.NEW
    pid: int | None = None  # the process that ran it last
    epochs_done: int = 0
    stop_reason: str | None = None
    error: str | None = None
    version: int = VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they were

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "manifest.json") -> RunManifest:
        version = data.get("version", 1)
        if version > VERSION:
            raise ConfigError(
                f"{where} was written by a newer segtrain (manifest version {version}; this segtrain reads up to "
                f"{VERSION}). Upgrade segtrain to use this run."
            )
        config = data["config"]
        script = data.get("script") or {"path": str(config.get("script", "")), "sha256": ""}
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known and k not in ("script", "status")}
        values["epochs_done"] = int(values.get("epochs_done") or 0)
        return cls(
            **values,
            script=ScriptRecord(str(script.get("path", "")), str(script.get("sha256", "")), script.get("copy")),
            status=_status(data.get("status") or RunStatus.NEW),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        data.update(script=self.script.to_json(), status=self.status.value, version=VERSION)
        return {**self.extra, **data}

    def __getitem__(self, key: str) -> Any:
        """manifest.json's value for `key`, as the file holds it (JSON): for readers of the file's keys."""
        return self.to_json()[key]

    @property
    def seed(self) -> int:
        """The data order's seed, which training needs (a ConfigError, exit 2, where the manifest has none)."""
        if self.data_seed is None:
            raise ConfigError("manifest.json records no data_seed: it is not a manifest that segtrain wrote.")
        return self.data_seed

    def transition(self, to: RunStatus, reason: Reason = Reason.ORDINARY) -> RunManifest:
        """This manifest with status `to`, where `TRANSITIONS` allows the move for `reason`; else TransitionError."""
        if reason not in TRANSITIONS.get((self.status, to), frozenset()):
            raise TransitionError(
                f"A run's status may not go from {self.status} to {to} ({reason}): "
                f"allowed from {self.status}: {allowed_from(self.status) or 'nothing'}."
            )
        return dataclasses.replace(self, status=to)


def _status(value: object) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        raise ConfigError(
            f"manifest.json records an unknown status {value!r}: it is not a manifest that this "
            "version of segtrain wrote."
        ) from None


def allowed_from(status: RunStatus) -> str:
    """The moves out of `status`, for a message."""
    return ", ".join(f"{b} ({'/'.join(sorted(r))})" for (a, b), r in TRANSITIONS.items() if a == status)


def read_manifest_file(path: Path, kind: str, required: str) -> dict[str, Any]:
    """A manifest that segtrain wrote (a run's, a sweep's, a cross-validation's): a JSON object with `required`.

    Anything else is a ConfigError (exit 2) that names the file: it is bad
    input, and nothing in it may be trusted or overwritten without `--force`.
    """
    try:
        manifest = atomic.read_json(path)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{path} cannot be read ({type(e).__name__}: {e}): it is not a {kind} manifest that segtrain wrote. "
            "Restore it, or start over in another directory (or with --force)."
        ) from e
    if not isinstance(manifest, dict) or required not in manifest:
        raise ConfigError(f"{path} is not a {kind} manifest that segtrain wrote (no {required!r} in it).")
    return manifest


def read_manifest(paths: RunPaths) -> RunManifest | None:
    """The run's manifest, or None where there is none yet; a ConfigError (exit 2) where it does not parse."""
    if not paths.manifest.exists():
        return None
    data = read_manifest_file(paths.manifest, "run", "config")
    try:
        return RunManifest.from_json(data, str(paths.manifest))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(
            f"{paths.manifest} is not a run manifest that segtrain wrote ({type(e).__name__}: {e}). "
            "Restore it, or start over in another directory (or with --force)."
        ) from e


def read_run(run_dir: Path | str) -> tuple[RunPaths, RunManifest]:
    """The paths and manifest of an existing run: the one way `resume`, `report`, `status` and `load_model` open one.

    Raises ConfigError (exit 2) naming what is wrong: no such directory, a
    file in its place, no manifest, a manifest that does not parse.
    """
    paths = RunPaths(Path(run_dir))
    if paths.root.exists() and not paths.root.is_dir():
        raise ConfigError(f"{run_dir} is a file, not a run directory: give the --run-dir of a `segtrain fit`.")
    if not paths.root.is_dir():
        raise ConfigError(
            f"{run_dir} does not exist: give the run directory of a `segtrain fit` "
            "(its --run-dir, by default checkpoints/<script name>)."
        )
    manifest = read_manifest(paths)
    if manifest is None and paths.trials.is_dir():
        raise ConfigError(
            f"{run_dir} holds a search that `segtrain run` ran (the script's study.optimize or tuner.search): each "
            f"trial is a run of its own in {paths.trials}. `segtrain ls {run_dir}` lists them; give one of them "
            "(the same `segtrain run` command goes on with the search)."
        )
    if manifest is None:
        raise ConfigError(
            f"{run_dir} is not a segtrain run directory (no manifest.json): give the --run-dir "
            "of a `segtrain fit` (by default checkpoints/<script name>)."
        )
    return paths, manifest


def write_manifest(paths: RunPaths, manifest: RunManifest) -> RunManifest:
    """Write `manifest` (stamped `updated`) and return what was written."""
    manifest = dataclasses.replace(manifest, updated=time.time())
    atomic.write_json(paths.manifest, manifest.to_json())
    return manifest


def _rewrite(paths: RunPaths, change: Callable[[RunManifest], RunManifest]) -> RunManifest | None:
    """Read the manifest on disk, change it, write it; nothing where there is none."""
    manifest = read_manifest(paths)
    return None if manifest is None else write_manifest(paths, change(manifest))


def start(paths: RunPaths, pid: int, reason: Reason = Reason.ORDINARY) -> RunManifest | None:
    """The run trains (again) in process `pid`."""
    return _rewrite(
        paths,
        lambda m: dataclasses.replace(m.transition(RunStatus.RUNNING, reason), pid=pid, stop_reason=None, error=None),
    )


def end(paths: RunPaths, status: RunStatus, stop_reason: str, epochs_done: int) -> RunManifest | None:
    """The run's loop ended with `status` (finished, stopped, interrupted or failed)."""
    return _rewrite(
        paths, lambda m: dataclasses.replace(m.transition(status), stop_reason=stop_reason, epochs_done=epochs_done)
    )


def fail(paths: RunPaths, error: str) -> RunManifest | None:
    """The run's loop raised `error`."""
    return _rewrite(paths, lambda m: dataclasses.replace(m.transition(RunStatus.FAILED), error=error))


def repair(paths: RunPaths, status: RunStatus, epochs_done: int, stop_reason: str) -> RunManifest | None:
    """A final checkpoint shows the run ended (`status`), which its manifest lost (a kill -9 before its records)."""
    return _rewrite(
        paths,
        lambda m: dataclasses.replace(
            m.transition(status, Reason.REPAIRED), epochs_done=epochs_done, stop_reason=stop_reason, error=None
        ),
    )


def record_epochs(paths: RunPaths, epochs: int) -> RunManifest | None:
    """The run now trains to `epochs` (extended, or shortened down to what it trained): what `resume` reads."""
    return _rewrite(paths, lambda m: dataclasses.replace(m, config=dict(m.config, epochs=epochs)))


def record_script(paths: RunPaths, script: ScriptRecord) -> RunManifest | None:
    """Where the run's script now is, and its copy."""
    return _rewrite(paths, lambda m: dataclasses.replace(m, script=script))

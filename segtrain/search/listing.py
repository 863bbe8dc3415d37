"""The runs under a folder, for `segtrain ls`: each with its state, epochs, last activity and size on disk.

A run is a directory with a manifest.json; a sweep's directory (sweep.json) and a
cross-validation's (cv.json) are one row each, for all the runs inside them.
Nothing below a run, a sweep or a cross-validation is searched further. Like
`segtrain status`, it reads files only (never TensorFlow, never a checkpoint's
bytes), and a run's lock decides whether a process trains it: a run recorded as
running whose process is gone is "crashed".
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from segtrain.errors import ConfigError, SegtrainError
from segtrain.outcomes import RunStatus
from segtrain.paths import CV_MANIFEST, RUN_MANIFEST, SWEEP_MANIFEST, CvPaths, RunPaths, SweepPaths
from segtrain.search.config import read_sweep_manifest
from segtrain.state.search_manifests import read_cv_manifest
from segtrain.telemetry.logs import load
from segtrain.telemetry.report import build_from
from segtrain.telemetry.status import run_state

UNREADABLE = "unreadable"  # the state of a directory whose manifest does not parse


@dataclass
class Listed:
    """One row of `segtrain ls` (and one object of its --json)."""

    path: str  # ROOT joined with the directory's path below it
    kind: str  # "run", "sweep" or "cv"
    state: str  # a RunStatus value (`segtrain status`'s state), or "unreadable"
    epochs_done: int  # a sweep's or cv's: its runs' together
    epochs_total: int | None  # None for a sweep: pruned trials stop early
    runs_done: int | None  # a sweep's trials or cv's folds that are done (finished or stopped); None for a run
    runs_total: int | None  # the trials a sweep wants, a cv's folds
    last_activity: float | None  # Unix time its manifest or epoch log (of any run inside) was last written
    size_bytes: int  # its files' sizes, everything inside included
    script: str | None  # the training script's file name
    error: str | None = None  # why it is unreadable

    @property
    def age_seconds(self) -> float | None:
        return None if self.last_activity is None else max(0.0, time.time() - self.last_activity)

    def to_json(self) -> dict[str, Any]:
        return dict(asdict(self), age_seconds=self.age_seconds)


def list_runs(root: Path | str) -> list[Listed]:
    """Every run, sweep and cross-validation under `root` (or `root` itself), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(
            f"{root} is not a directory: give the folder that holds the runs (by default checkpoints)."
            if root.exists()
            else f"{root} does not exist: give the folder that holds the runs (by default checkpoints)."
        )
    return sorted((_entry(path, kind) for path, kind in _found(root)), key=lambda e: e.path)


def _found(root: Path) -> list[tuple[Path, str]]:
    found = []
    for folder, dirs, files in os.walk(root):
        kind = _kind(files)
        if kind is not None:
            found.append((Path(folder), kind))
            dirs.clear()  # nothing below a run, sweep or cv is listed on its own
        else:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
    return found


def _kind(files: list[str]) -> str | None:
    if SWEEP_MANIFEST in files:
        return "sweep"
    if CV_MANIFEST in files:
        return "cv"
    if RUN_MANIFEST in files:
        return "run"
    return None


def _entry(path: Path, kind: str) -> Listed:
    try:
        return _run(path) if kind == "run" else _group(path, kind)
    except SegtrainError as e:
        return Listed(str(path), kind, UNREADABLE, 0, None, None, None, _activity(path), _size(path), None, str(e))


def _run(path: Path) -> Listed:
    logs = load(path)
    report = build_from(logs)
    state = run_state(report.status, logs.alive)
    script = logs.manifest.script.path
    return Listed(
        str(path),
        "run",
        str(state),
        report.epochs_done,
        report.epochs_total,
        None,
        None,
        _activity(path),
        _size(path),
        Path(script).name if script else None,
    )


def _group(path: Path, kind: str) -> Listed:
    """A sweep's or cv's row, from the runs inside it (a sweep's study in its database is not opened)."""
    manifest = read_sweep_manifest(path) if kind == "sweep" else read_cv_manifest(CvPaths(path).manifest)
    config = manifest.config
    wanted = int(config.get("trials" if kind == "sweep" else "folds") or 0)
    epochs = int(config.get("run", {}).get("epochs") or 0)
    inside = [found for sub in sorted(path.iterdir()) if sub.is_dir() for found in _found(sub)]
    runs = [_run(p) for p, k in inside if k == "run"]
    done = sum(RunStatus(r.state).done for r in runs)
    script = manifest.script.path or None
    activities = [a for a in [_activity(path), *(r.last_activity for r in runs)] if a is not None]
    return Listed(
        str(path),
        kind,
        str(_group_state([RunStatus(r.state) for r in runs], done, wanted)),
        sum(r.epochs_done for r in runs),
        None if kind == "sweep" else wanted * epochs,
        done,
        wanted,
        max(activities) if activities else None,
        _size(path),
        Path(script).name if script else None,
    )


def _group_state(states: list[RunStatus], done: int, wanted: int) -> RunStatus:
    """Running while any run inside trains; else finished once enough are done; else crashed or failed if one did."""
    if RunStatus.RUNNING in states:
        return RunStatus.RUNNING
    if states and done >= wanted:
        return RunStatus.FINISHED
    for state in (RunStatus.CRASHED, RunStatus.FAILED):
        if state in states:
            return state
    return RunStatus.INTERRUPTED if states else RunStatus.NEW


def _activity(path: Path) -> float | None:
    """When the directory's manifest(s) or epoch log was last written."""
    paths = RunPaths(path)
    times = []
    for file in (paths.manifest, paths.epochs_log, SweepPaths(path).manifest, CvPaths(path).manifest):
        try:
            times.append(file.stat().st_mtime)
        except OSError:
            continue
    return max(times) if times else None


def _size(path: Path) -> int:
    """Bytes of every file below `path` (a file linked twice counted once; links not followed)."""
    total, seen = 0, set[tuple[int, int]]()
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue  # removed while we looked (a checkpoint pruned)
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def ago(seconds: float | None) -> str:
    """`seconds` ago, for a person: "just now", "3 min ago", "5 h ago", "2 d ago"."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def human_size(size: int) -> str:
    """Bytes for a person, in powers of 1024: "812 B", "4.2 MiB"."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"

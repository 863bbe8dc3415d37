"""Reading a run's logs: epochs.jsonl and segments.jsonl, reduced to the newest attempt of each epoch.

It reads only files (never TensorFlow, never the run's lock), so it is
instant and works while the run trains, after it finished, and after it was
killed. A resumed run has repeated lines in its logs (the epochs after the
newest checkpoint ran again): each epoch is taken from its newest attempt,
and an attempt (consecutive epochs of one segment in one process) is matched
to its line of segments.jsonl by segment index, first epoch and process id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from segtrain.paths import RunPaths, is_locked
from segtrain.state import atomic
from segtrain.state.manifest import RunManifest, read_run

T = TypeVar("T")


@dataclass
class EpochRecord:
    """One line of epochs.jsonl."""

    epoch: int  # 0-based
    segment: int  # 0-based segment index
    seconds: float
    steps: int | None = None
    samples_per_second: float | None = None
    rss_mb: float | None = None
    device_mb: float | None = None
    device_peak_mb: float | None = None
    pid: int | None = None
    logs: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, rec: dict[str, Any]) -> EpochRecord | None:
        """The record, or None for a line that lacks the fields every version writes."""
        try:
            return cls(
                int(rec["epoch"]),
                int(rec["segment"]),
                float(rec["seconds"]),
                rec.get("steps"),
                rec.get("samples_per_second"),
                rec.get("rss_mb"),
                rec.get("device_mb"),
                rec.get("device_peak_mb"),
                rec.get("pid"),
                dict(rec.get("logs") or {}),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class RunLogs:
    """A run directory's manifest and logs, with every repeated epoch reduced to its newest attempt."""

    paths: RunPaths
    manifest: RunManifest
    epochs: list[EpochRecord]  # newest attempt of each epoch, in epoch order
    segment_records: list[dict[str, Any]]  # every line of segments.jsonl, oldest first
    epochs_rerun: int  # epoch lines superseded by a later attempt (work a crash cost)
    alive: bool  # a live process holds the run's lock

    @property
    def config(self) -> dict[str, Any]:
        """The options the run was started with (the manifest's `config`)."""
        return self.manifest.config


def load(run_dir: Path | str) -> RunLogs:
    """Read a run directory's manifest and logs (raises ConfigError, exit 2, where it holds no run)."""
    paths, manifest = read_run(run_dir)
    lines = [EpochRecord.from_json(r) for r in atomic.read_lines_json(paths.epochs_log)]
    segment_records = [r for r in atomic.read_lines_json(paths.segments_log) if "start_epoch" in r]
    epochs, rerun = newest_attempts([e for e in lines if e is not None], lambda e: e.epoch)
    return RunLogs(paths, manifest, epochs, segment_records, rerun, is_locked(paths))


def newest_attempts(records: Sequence[T], position: Callable[[T], int]) -> tuple[list[T], int]:
    """Keep each position's newest attempt, in order; return them and how many were superseded.

    A record at position p supersedes every earlier record at p or later: a
    resume from an older checkpoint re-ran those.
    """
    kept: list[T] = []
    dropped = 0
    for rec in records:
        while kept and position(kept[-1]) >= position(rec):
            kept.pop()
            dropped += 1
        kept.append(rec)
    return kept, dropped


def attempts(epochs: Sequence[EpochRecord]) -> list[list[EpochRecord]]:
    """Split the epoch history into uninterrupted attempts: consecutive epochs of one segment in one process."""
    groups: list[list[EpochRecord]] = []
    for rec in epochs:
        last = groups[-1][-1] if groups else None
        if last is not None and (last.segment, last.pid, last.epoch + 1) == (rec.segment, rec.pid, rec.epoch):
            groups[-1].append(rec)
        else:
            groups.append([rec])
    return groups


def segment_record(attempt: Sequence[EpochRecord], records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest line of segments.jsonl written by the attempt that trained `attempt`, or None (it never ended)."""
    first = attempt[0]
    for rec in reversed(records):
        pid = rec.get("pid")
        if (
            rec.get("index") == first.segment
            and rec.get("start_epoch") == first.epoch
            and rec.get("end_epoch", 0) > first.epoch
            and (pid is None or first.pid is None or pid == first.pid)
        ):
            return rec
    return None

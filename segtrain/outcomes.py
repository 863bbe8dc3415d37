"""How a segment ended and where a run stands: the enums every layer shares, and a run's outcome.

Both are `str` enums, so they compare equal to, and serialise as, the plain
strings that segments.jsonl, manifest.json and `segtrain report --json` hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segtrain.options import Choice


class SegmentOutcome(Choice):
    """How one segment (one attempt at it) ended."""

    BOUNDARY = "boundary"  # reached its planned end, or `--segment auto` / `--max-memory` ended it
    FINISHED = "finished"  # trained the run's last epoch
    STOPPED = "stopped"  # a callback set `model.stop_training` (EarlyStopping)
    PREEMPTED = "preempted"  # a signal stopped it after a resumable checkpoint
    NAN = "nan"  # the loss became NaN or infinite
    # Only in the report, for an attempt that wrote no line of segments.jsonl:
    RUNNING = "running"  # it is training now
    CRASHED = "crashed"  # its process died

    @property
    def completed(self) -> bool:
        """Whether the segment reached its end (a boundary, the end of the run, or an early stop)."""
        return self in (SegmentOutcome.BOUNDARY, SegmentOutcome.FINISHED, SegmentOutcome.STOPPED)


class RunStatus(Choice):
    """Where a run stands, as its manifest records it (and CRASHED, which no process can record)."""

    NEW = "new"
    RUNNING = "running"
    FINISHED = "finished"  # every epoch trained
    STOPPED = "stopped"  # a callback ended it early: done, exit 0
    INTERRUPTED = "interrupted"  # stopped by a signal: resumable, exit 75
    FAILED = "failed"
    CRASHED = "crashed"  # recorded as running, but no live process holds its lock

    @property
    def done(self) -> bool:
        """Whether the run has ended for good (running it again only reports)."""
        return self in (RunStatus.FINISHED, RunStatus.STOPPED)

    @property
    def resumable(self) -> bool:
        """Whether running the same command again goes on from a checkpoint."""
        return self in (RunStatus.INTERRUPTED, RunStatus.FAILED, RunStatus.CRASHED, RunStatus.RUNNING, RunStatus.NEW)


@dataclass
class RunOutcome:
    """How `segtrain.fit` ended: a status, the exit code the CLI returns, and a sentence for the user."""

    status: RunStatus  # FINISHED, STOPPED, INTERRUPTED or FAILED
    exit_code: int
    epochs_done: int
    epochs_total: int
    message: str
    run_dir: Path
    writes: bool = True  # False: many hosts, process 1 and up, which only read the run (process 0 reports it)
    pruned: bool = False  # STOPPED by the job's hook (a sweep's pruner), not by the script's callbacks
    launched: bool = False  # `segtrain run`: the script owns stdout, so segtrain reports on stderr
    searched: bool = False  # `segtrain run` on a script's study.optimize: its trials' runs are in `run_dir`

"""Where a run stands, from its directory alone: for a job that runs now, or one that died.

The manifest says what the run last recorded ("running" stays written when a
process is killed with SIGKILL), so the run's lock decides whether a process
is alive: the kernel drops a `flock` when its holder dies, however it dies.
A run recorded as running with no live process is reported as crashed, with
the command that goes on from its newest complete checkpoint.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segtrain.outcomes import RunStatus
from segtrain.paths import RunPaths, lock_holder
from segtrain.state import checkpoint
from segtrain.telemetry.logs import RunLogs, load
from segtrain.telemetry.report import build_from, json_ready


@dataclass
class CheckpointInfo:
    """The newest complete checkpoint: where `resume` goes on from."""

    name: str
    epoch: int  # epochs completed
    batch: int  # batches into the next epoch (a checkpoint written on a signal)
    final: bool


@dataclass
class LastEpoch:
    """The newest epoch in the log: is the run still moving, and how fast and fat is it now?"""

    epoch: int  # 0-based
    segment: int  # 0-based
    seconds: float
    rss_mb: float | None
    device_mb: float | None
    pid: int | None
    age_seconds: float | None  # since the epoch log was last written


@dataclass
class StageInfo:
    """A launched script's later `fit` call (`segtrain run`): a run directory of its own inside the run's."""

    number: int  # 2 for the script's second fit() call
    run_dir: str
    state: RunStatus
    epochs_total: int
    epochs_done: int


@dataclass
class StatusReport:
    """What `segtrain status` shows (and prints with --json)."""

    run_dir: str
    status: RunStatus  # the manifest's
    state: RunStatus  # status corrected by the lock: CRASHED when recorded running but no process holds it
    alive: bool
    pid: int | None  # the process holding the lock (alive), else the last one recorded
    epochs_total: int
    epochs_done: int  # epochs trained (newest attempt of each)
    segments_total: int
    segments_done: int  # segments that reached their end (boundary, finished or stopped)
    current_segment: int | None  # 0-based segment of the newest epoch
    checkpoint: CheckpointInfo | None
    last_epoch: LastEpoch | None
    slowdown: float | None  # newest segment's, against segment 1
    stop_reason: str | None
    hint: str | None
    stages: list[StageInfo] = field(default_factory=list)  # a launched script's fit() calls after the first

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: enums as their values."""
        return json_ready(asdict(self))


def read_status(run_dir: Path | str) -> StatusReport:
    """The status of the run in `run_dir` (raises ConfigError, exit 2, where it holds no run).

    A launched script's run with several `fit` calls lists its later stages;
    where one of them has begun, the run's state is the newest stage's.
    """
    logs = load(run_dir)
    report = build_from(logs)
    stages = [_stage(logs.paths, number, logs.alive) for number in range(2, logs.paths.stage_count() + 1)]
    state = stages[-1].state if stages else run_state(report.status, logs.alive)
    return StatusReport(
        run_dir=str(logs.paths.root),
        status=report.status,
        state=state,
        alive=logs.alive,
        pid=lock_holder(logs.paths) if logs.alive else logs.manifest.pid,
        epochs_total=report.epochs_total,
        epochs_done=report.epochs_done,
        segments_total=report.segments_planned,
        segments_done=len({r.index for r in report.segments if r.outcome.completed}),
        current_segment=logs.epochs[-1].segment if logs.epochs else None,
        checkpoint=_checkpoint(logs),
        last_epoch=_last_epoch(logs),
        slowdown=report.segments[-1].slowdown if report.segments and report.segments[-1].epochs > 1 else None,
        stop_reason=report.stop_reason,
        hint=_hint(state, logs),
        stages=stages,
    )


def _stage(paths: RunPaths, number: int, alive: bool) -> StageInfo:
    """Stage `number` of the run in `paths`; `alive`: whether a process holds the run's lock (its stages have none)."""
    report = build_from(load(paths.stage(number)))
    state = run_state(report.status, alive)
    return StageInfo(number, str(paths.stage(number)), state, report.epochs_total, report.epochs_done)


def run_state(status: RunStatus, alive: bool) -> RunStatus:
    """Where the run stands: a live process decides RUNNING; recorded as running (or new) without one, CRASHED.

    `status`: the manifest's; `alive`: whether a live process holds the run's lock (`segtrain.paths.is_locked`).
    """
    if alive:
        return RunStatus.RUNNING
    if status in (RunStatus.RUNNING, RunStatus.NEW):
        return RunStatus.CRASHED
    return status


def _checkpoint(logs: RunLogs) -> CheckpointInfo | None:
    newest = checkpoint.latest(logs.paths, hashed=False)  # sizes only: `segtrain verify` reads every byte
    if newest is None:
        return None
    return CheckpointInfo(newest.path.name, newest.epoch, newest.batch, newest.final)


def _last_epoch(logs: RunLogs) -> LastEpoch | None:
    if not logs.epochs:
        return None
    last = logs.epochs[-1]
    try:
        age = max(0.0, time.time() - os.path.getmtime(logs.paths.epochs_log))
    except OSError:
        age = None
    return LastEpoch(last.epoch, last.segment, last.seconds, last.rss_mb, last.device_mb, last.pid, age)


def _hint(state: RunStatus, logs: RunLogs) -> str | None:
    """The command that goes on: for a run that no process trains and that can resume."""
    if state.resumable and not logs.alive:
        return f"segtrain resume {logs.paths.root}"
    return None


_STYLES = {
    RunStatus.RUNNING: "cyan",
    RunStatus.FINISHED: "green",
    RunStatus.STOPPED: "green",
    RunStatus.INTERRUPTED: "yellow",
    RunStatus.CRASHED: "red",
    RunStatus.FAILED: "red",
}


def render_status(st: StatusReport, console: Any) -> None:
    """A few lines: state, progress, checkpoint, the newest epoch, what to do next."""
    from rich.markup import escape

    style = _STYLES.get(st.state, "white")
    who = f"pid {st.pid} alive" if st.alive else "no live process" + (f", last pid {st.pid}" if st.pid else "")
    recorded = f", recorded as {st.status}" if st.state != st.status else ""
    lines = [
        f"{escape(st.run_dir)}: [{style}]{st.state}[/] ({who}{recorded})",
        f"  epochs    {st.epochs_done}/{st.epochs_total} ({_percent(st.epochs_done, st.epochs_total)})",
        f"  segments  {st.segments_done}"
        + (f"/{st.segments_total}" if st.segments_total else "")
        + " done"
        + (f", in segment {st.current_segment + 1}" if st.current_segment is not None and st.alive else ""),
    ]
    lines.append(
        "  checkpoint "
        + (escape(_describe_checkpoint(st.checkpoint, st.epochs_done)) if st.checkpoint else "none complete yet")
    )
    if st.last_epoch is not None:
        lines.append("  last epoch " + _describe_epoch(st.last_epoch, st.slowdown))
    if st.stop_reason and st.state not in (RunStatus.RUNNING, RunStatus.CRASHED):
        lines.append(f"  reason    {escape(st.stop_reason)}")
    lines += [
        f"  stage {stage.number}   [{_STYLES.get(stage.state, 'white')}]{stage.state}[/] "
        f"{stage.epochs_done}/{stage.epochs_total} epochs in {escape(stage.run_dir)}"
        for stage in st.stages
    ]
    if st.hint:
        lines.append(f"  go on     {escape(st.hint)}")
    for line in lines:
        console.print(line, highlight=False)


def _describe_checkpoint(ckpt: CheckpointInfo, epochs_done: int) -> str:
    where = f"after epoch {ckpt.epoch}" + (f", batch {ckpt.batch} of epoch {ckpt.epoch + 1}" if ckpt.batch else "")
    text = f"{ckpt.name} ({where}{', final' if ckpt.final else ''})"
    lost = epochs_done - ckpt.epoch
    if lost > 0 and not ckpt.final:
        text += f"; a resume would re-run {lost} epoch{'s' if lost != 1 else ''}"
    return text


def _describe_epoch(last: LastEpoch, slowdown: float | None) -> str:
    parts = [f"{last.epoch + 1}: {last.seconds:.3g} s"]
    if slowdown is not None:
        parts.append(f"segment slowdown ×{slowdown:.2f}")
    if last.rss_mb is not None:
        parts.append(f"RSS {last.rss_mb:.0f} MB")
    if last.device_mb is not None:
        parts.append(f"device {last.device_mb:.0f} MB")
    if last.age_seconds is not None:
        parts.append(f"logged {_ago(last.age_seconds)} ago")
    return ", ".join(parts)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _percent(done: int, total: int) -> str:
    return f"{done / total:.0%}" if total else "–"

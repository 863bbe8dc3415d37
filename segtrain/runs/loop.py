"""The segment loop: train each segment through a runner, record it, decide what comes next.

Data flows one way: the loop asks a runner for a segment, the runner returns a
`SegmentResult`, the loop records it (segments.jsonl, history) and decides what
comes next from its outcome. The loop alone owns the run's status and exit code.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segtrain.config import RunConfig
from segtrain.errors import EXIT_FAILED, EXIT_OK, EXIT_RESUMABLE, CheckpointError, SegtrainError
from segtrain.outcomes import RunOutcome, RunStatus, SegmentOutcome
from segtrain.paths import RunPaths
from segtrain.runs.directory import open_run, wait_for_run
from segtrain.runs.paths import RunLock
from segtrain.runs.records import append_segment, write_history
from segtrain.runs.runners import FailedAfterTraining, Launch, runner_for
from segtrain.state import checkpoint
from segtrain.state import manifest as run_manifest
from segtrain.state.manifest import Reason, RunManifest
from segtrain.telemetry import scalars
from segtrain.telemetry.figures import BoundaryCost
from segtrain.telemetry.progress import RunProgress
from segtrain.training.boundaries import AUTO, next_segment
from segtrain.training.records import Segment, SegmentResult
from segtrain.training.signals import SignalPolicy, StopFlag
from segtrain.worker.handle import TrialLink
from segtrain.worker.pool import WorkerPool
from segtrain.worker.protocol import CheckpointRef


@dataclass
class RunHooks:
    """What a longer job (a sweep, cross-validation) shares with each of its runs."""

    on_epoch: Callable[[dict[str, Any]], str | None] | None = None  # after each epoch: a reason to stop there
    verdicts: bool = False  # whether on_epoch may stop the run: a worker then waits for its answer every epoch
    pool: WorkerPool | None = None  # workers shared across the job's runs
    more_runs: bool = False  # another run follows in this process: pre-start its worker
    # A sweep's next run, asked for while this one trains its last segment: its directory, opened (None: not known
    # yet); its pre-started worker builds and traces its model meanwhile (`WorkerPool.prepare`).
    next_run: Callable[[], Path | None] | None = None
    lock: RunLock | None = None  # the run's lock, already held by the job
    trial: TrialLink | None = None  # a launched search's trial, whose run this is


def fit(cfg: RunConfig, progress: bool = True, hooks: RunHooks | None = None) -> RunOutcome:
    """Run (or resume) the run that `cfg` describes until it ends or is stopped."""
    hooks = hooks or RunHooks()
    paths = RunPaths(cfg.directory)
    if cfg.hosts is not None and not cfg.hosts.writes:
        return _follow(cfg, paths, progress)
    with contextlib.nullcontext(hooks.lock) if hooks.lock else RunLock(paths):
        manifest = open_run(cfg)
        checkpoint.clean_leftovers(paths)
        newest = checkpoint.latest(paths)
        # Done (a launched script's rest runs again: its loop does that).
        if _is_done(newest, cfg) and not cfg.launched:
            assert newest is not None
            scalars.catch_up(cfg.tensorboard, paths, newest.epoch)  # --tensorboard given after the run finished
            return _done(paths, manifest, newest, cfg)
        run_manifest.start(paths, os.getpid(), _why_again(newest, cfg) if manifest.status.done else Reason.ORDINARY)
        loop = SegmentLoop(cfg, paths, manifest, newest, progress, hooks)
        try:
            outcome = loop.execute()
        except BaseException as e:
            _mark_failed(paths, e)
            raise
        run_manifest.end(paths, outcome.status, outcome.message, outcome.epochs_done)
        return outcome


def _follow(cfg: RunConfig, paths: RunPaths, progress: bool) -> RunOutcome:
    """Many hosts, process 1 and up: train every segment with process 0, reading the run it writes."""
    manifest = wait_for_run(cfg)
    newest = checkpoint.latest(paths)
    if _is_done(newest, cfg):
        assert newest is not None
        return _done(paths, manifest, newest, cfg, writes=False)
    return SegmentLoop(cfg, paths, manifest, newest, progress, RunHooks(), writes=False).execute()


def _mark_failed(paths: RunPaths, error: BaseException) -> None:
    """Record the failure in the manifest, if the disk still lets us (it may be full)."""
    text = str(error).splitlines()[0] if isinstance(error, SegtrainError) else f"{type(error).__name__}: {error}"
    try:
        run_manifest.fail(paths, text)
    except (OSError, run_manifest.TransitionError):
        pass  # the error that ended the run is the one to report


def _why_again(newest: checkpoint.Checkpoint | None, cfg: RunConfig) -> Reason:
    """Why a run that its manifest records as ended (finished, stopped) trains again now."""
    if cfg.launched:
        return Reason.REPLAYED  # the script runs again; a complete run's worker trains nothing
    if newest is None or not newest.final:
        return Reason.FELL_BACK  # the checkpoint that ended it is gone or damaged
    return Reason.CONTINUED if newest.stopped else Reason.EXTENDED


def _is_done(newest: checkpoint.Checkpoint | None, cfg: RunConfig) -> bool:
    """Whether the run has ended for good at `newest`: finished (and not extended), or stopped early.

    A stopped run stays stopped, however often the same command runs again, unless
    this call asks to train it on (`resume --continue`).
    """
    if newest is None or (cfg.continue_stopped and newest.stopped):
        return False
    return newest.ends_run(cfg.epochs)


def _done(
    paths: RunPaths, manifest: RunManifest, newest: checkpoint.Checkpoint, cfg: RunConfig, writes: bool = True
) -> RunOutcome:
    """A run that ended already: report it, changing nothing, except records a kill -9 left behind the checkpoint."""
    status = RunStatus.STOPPED if newest.stopped else RunStatus.FINISHED
    if newest.stopped:
        message = (
            f"stopped early: {newest.state.stop_reason}; the run stays stopped "
            f"(`segtrain resume {paths.root} --continue` trains it on)"
        )
    else:
        message = f"finished all {newest.epoch} epochs"
    if writes and manifest.status != status:  # killed between its last checkpoint and its records
        write_history(paths, newest.path)
        run_manifest.repair(paths, status, newest.epoch, message)
    return RunOutcome(
        status, EXIT_OK, newest.epoch, cfg.epochs, message, paths.root, writes, newest.pruned, cfg.launched
    )


class SegmentLoop:
    """Segments one after another until the run ends, fails or a signal stops it.

    `writes`: whether this process keeps the run's records (segments.jsonl,
    history, TensorBoard); with many hosts only process 0 does.
    """

    def __init__(
        self,
        cfg: RunConfig,
        paths: RunPaths,
        manifest: RunManifest,
        newest: checkpoint.Checkpoint | None,
        progress: bool,
        hooks: RunHooks,
        writes: bool = True,
    ):
        self.cfg, self.paths, self.writes = cfg, paths, writes
        # Where the next segment starts; a checkpoint this loop's own segments committed is trusted by its size.
        self.start: CheckpointRef | None = None if newest is None else CheckpointRef(newest.path.name)
        self.epochs_done = 0 if newest is None else newest.epoch
        self.index = 0 if newest is None else newest.state.segment + 1
        # Done: a launched script's worker then trains nothing, and the script goes on.
        self.complete = _is_done(newest, cfg)
        self.flag = StopFlag()
        segments = None if cfg.segment == AUTO else -(-cfg.epochs // int(cfg.segment))
        self.progress = RunProgress(cfg.epochs, self.epochs_done, segments, enabled=progress)
        # --tensorboard: the run's scalars
        self.board = scalars.open_log(cfg.tensorboard, paths, self.epochs_done) if writes else None
        self.hook = hooks.on_epoch
        self.runner = runner_for(
            cfg,
            manifest.seed,
            self.flag,
            self.on_epoch,
            verdicts=hooks.verdicts and hooks.on_epoch is not None,
            pool=hooks.pool,
            more_runs=hooks.more_runs,
            next_run=hooks.next_run,
            trial=hooks.trial,
        )

    def on_epoch(self, record: dict[str, Any]) -> str | None:
        """An epoch ended: the progress bar moves, and the job's hook may stop the run there."""
        self.progress.on_epoch(record)
        if self.board is not None:
            self.board.epoch(record)
        return self.hook(record) if self.hook is not None else None

    def execute(self) -> RunOutcome:
        policy = SignalPolicy(self.cfg.signals, self.flag, forward=self.runner.forward, abort=self.runner.abort)
        try:
            with policy:
                return self._segments()
        finally:
            self.runner.close()
            self.progress.close()
            if self.board is not None:
                self.board.close()

    def _segments(self) -> RunOutcome:
        cfg = self.cfg
        while True:
            if self.flag.requested and cfg.hosts is None:  # many hosts: the next worker tells the others first
                return self._outcome(
                    RunStatus.INTERRUPTED, f"stopped by {self.flag.signal} at a segment boundary; resumable"
                )
            if self.complete:  # a launched script's run: its worker trains nothing, the script goes on after fit
                segment = Segment(self.index, self.epochs_done, self.epochs_done)
            else:
                segment = next_segment(self.epochs_done, cfg.epochs, cfg.segment, self.index)
            started = time.perf_counter()
            try:
                result, launch = self.runner.train(segment, self.start)
            except FailedAfterTraining as e:
                self._record(e.result, e.launch, time.perf_counter() - started)
                raise e.error from None
            self._record(result, launch, time.perf_counter() - started)
            self.epochs_done = result.end_epoch
            self.index = segment.index + 1
            if result.checkpoint:
                self.start = CheckpointRef(result.checkpoint, committed_here=True)
            if result.outcome == SegmentOutcome.BOUNDARY:
                continue
            return self._ending(result)

    def _ending(self, result: SegmentResult) -> RunOutcome:
        """The run's outcome after a segment that did not end at a boundary."""
        newest = self.start.name if self.start else None
        if result.outcome == SegmentOutcome.FINISHED:
            return self._outcome(RunStatus.FINISHED, f"finished all {self.cfg.epochs} epochs")
        if result.outcome == SegmentOutcome.STOPPED:
            return self._outcome(RunStatus.STOPPED, f"stopped early: {result.stop_reason}", pruned=result.pruned)
        if result.outcome == SegmentOutcome.PREEMPTED:
            where = f"from {newest}" if newest else "from the start (no checkpoint yet)"
            every = " (the same command on every host)" if self.cfg.hosts is not None else ""
            return self._outcome(RunStatus.INTERRUPTED, f"stopped by {result.stop_reason}; resumable {where}{every}")
        kept = (
            f"The newest complete checkpoint, {newest}, was written before it."
            if newest
            else "No checkpoint had been written yet."
        )
        return self._outcome(RunStatus.FAILED, f"{result.stop_reason}. {kept}")

    def _outcome(self, status: RunStatus, message: str, pruned: bool = False) -> RunOutcome:
        code = {RunStatus.FINISHED: EXIT_OK, RunStatus.STOPPED: EXIT_OK, RunStatus.INTERRUPTED: EXIT_RESUMABLE}.get(
            status, EXIT_FAILED
        )
        return RunOutcome(
            status,
            code,
            self.epochs_done,
            self.cfg.epochs,
            message,
            self.paths.root,
            self.writes,
            pruned,
            self.cfg.launched,
        )

    def _record(self, result: SegmentResult, launch: Launch, wall: float) -> None:
        if result.trained_nothing:
            return  # stopped before it trained anything
        record = result.to_json()
        record.update(launch.to_json(), isolation=self.cfg.isolation, wall_seconds=wall)
        record["boundary_seconds"] = BoundaryCost.from_record(record).total
        if not self.writes:  # many hosts: process 0 records the run
            self.progress.on_segment(record)
            return
        try:
            append_segment(self.paths, record)
            if result.checkpoint:
                write_history(self.paths, self.paths.root / result.checkpoint)
        except OSError as e:
            raise CheckpointError(
                f"Could not write the run's records in {self.paths.root}: {e.strerror or e}. "
                f"The previous complete checkpoint is intact ({result.checkpoint or self.start}); "
                "free space or fix permissions, then run the same command again."
            ) from e
        self.progress.on_segment(record)
        if self.board is not None:
            self.board.segment(record)

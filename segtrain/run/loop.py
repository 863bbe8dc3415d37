"""The segment loop: run each segment in a fresh worker or in this process, and record it.

Data flows one way: the loop asks a runner for a segment, the runner returns a
`SegmentResult`, the loop records it (segments.jsonl, history) and decides what
comes next from its outcome. The loop alone owns the run's status and exit code.
"""

from __future__ import annotations

import csv
import gc
import io
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from segtrain.state import atomic, checkpoint
from segtrain.training.boundaries import AUTO
from segtrain.config import RunConfig
from segtrain.errors import EXIT_FAILED, EXIT_OK, EXIT_RESUMABLE, CheckpointError, ScriptError, SegtrainError
from segtrain.telemetry.progress import RunProgress
from segtrain.run.directory import DONE_STATUSES, open_run
from segtrain.run.paths import RunLock, RunPaths, update_manifest
from segtrain.training.segment import ProcessContext, Segment, SegmentResult, StopFlag, next_segment, run_segment
from segtrain.training.signals import SignalPolicy
from segtrain.worker.handle import WorkerProcess

Events = Callable[[dict], None]
log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    """How `fit` ended: a status, the exit code the CLI returns, and a sentence for the user."""

    status: str  # "finished", "stopped", "interrupted", "failed"
    exit_code: int
    epochs_done: int
    epochs_total: int
    message: str
    run_dir: Path


def fit(cfg: RunConfig, progress: bool = True) -> RunOutcome:
    """Run (or resume) the run that `cfg` describes until it ends or is stopped."""
    paths = RunPaths(cfg.run_dir)
    with RunLock(paths):
        manifest = open_run(cfg)
        checkpoint.clean_leftovers(paths)
        newest = checkpoint.latest(paths)
        if newest is not None and newest.final:
            return _done(paths, manifest, newest, cfg)
        update_manifest(paths, status="running", pid=os.getpid(), stop_reason=None, error=None)
        loop = _Loop(cfg, paths, manifest, newest, progress)
        try:
            outcome = loop.run()
        except BaseException as e:
            _mark_failed(paths, e)
            raise
        update_manifest(paths, status=outcome.status, stop_reason=outcome.message,
                        epochs_done=outcome.epochs_done)
        return outcome


def _mark_failed(paths: RunPaths, error: BaseException) -> None:
    """Record the failure in the manifest, if the disk still lets us (it may be full)."""
    text = str(error).splitlines()[0] if isinstance(error, SegtrainError) else f"{type(error).__name__}: {error}"
    try:
        update_manifest(paths, status="failed", error=text)
    except OSError:
        pass


def _done(paths: RunPaths, manifest: dict, newest: checkpoint.Checkpoint, cfg: RunConfig) -> RunOutcome:
    status = "stopped" if newest.state.get("outcome") == "stopped" else "finished"
    if manifest.get("status") != status:
        update_manifest(paths, status=status, epochs_done=newest.epoch)
    message = newest.state.get("stop_reason") or f"finished all {cfg.epochs} epochs"
    return RunOutcome(status, EXIT_OK, newest.epoch, cfg.epochs, message, paths.root)


class _Loop:
    def __init__(self, cfg: RunConfig, paths: RunPaths, manifest: dict, newest, progress: bool):
        self.cfg, self.paths, self.manifest = cfg, paths, manifest
        self.ckpt_name = None if newest is None else newest.path.name
        self.epochs_done = 0 if newest is None else newest.epoch
        self.index = 0 if newest is None else newest.state.get("segment", -1) + 1
        self.just_committed = False  # whether ckpt_name was committed by a segment of this process's loop
        self.flag = StopFlag()
        segments = None if cfg.segment == AUTO else -(-cfg.epochs // cfg.segment)
        self.progress = RunProgress(cfg.epochs, self.epochs_done, segments, enabled=progress)
        runner_cls = _ProcessRunner if cfg.isolation == "process" else _SessionRunner
        self.runner = runner_cls(cfg, manifest, self.flag, self.progress.on_event)

    def run(self) -> RunOutcome:
        policy = SignalPolicy(self.cfg.signals, self.flag, forward=self.runner.forward,
                              abort=self.runner.abort)
        try:
            with policy:
                return self._segments()
        finally:
            self.runner.close()
            self.progress.close()

    def _segments(self) -> RunOutcome:
        cfg = self.cfg
        while True:
            if self.flag.requested:
                return self._outcome("interrupted", EXIT_RESUMABLE,
                                     f"stopped by {self.flag.signal} at a segment boundary; resumable")
            segment = next_segment(self.epochs_done, cfg.epochs, cfg.segment, self.index)
            started = time.perf_counter()
            result, extra = self.runner.run(segment, self.ckpt_name, self.just_committed)
            self._record(result, extra, time.perf_counter() - started)
            self.epochs_done = result.end_epoch
            self.index = segment.index + 1
            self.just_committed = bool(result.checkpoint) or self.just_committed
            self.ckpt_name = result.checkpoint or self.ckpt_name
            if result.outcome == "boundary":
                continue
            if result.outcome == "finished":
                return self._outcome("finished", EXIT_OK, f"finished all {cfg.epochs} epochs")
            if result.outcome == "stopped":
                return self._outcome("stopped", EXIT_OK, f"stopped early: {result.stop_reason}")
            if result.outcome == "preempted":
                where = f"from {self.ckpt_name}" if self.ckpt_name else "from the start (no checkpoint yet)"
                return self._outcome("interrupted", EXIT_RESUMABLE,
                                     f"stopped by {result.stop_reason}; resumable {where}")
            kept = (f"The newest complete checkpoint, {self.ckpt_name}, was written before it."
                    if self.ckpt_name else "No checkpoint had been written yet.")
            return self._outcome("failed", EXIT_FAILED, f"{result.stop_reason}. {kept}")

    def _outcome(self, status: str, code: int, message: str) -> RunOutcome:
        return RunOutcome(status, code, self.epochs_done, self.cfg.epochs, message, self.paths.root)

    def _record(self, result: SegmentResult, extra: dict, wall: float) -> None:
        if result.end_epoch == result.start_epoch and result.checkpoint is None:
            return  # stopped before it trained anything
        record = result.to_json()
        record.update(extra, isolation=self.cfg.isolation, wall_seconds=wall)
        record["boundary_seconds"] = (extra.get("start_seconds", 0.0) + extra.get("clear_seconds", 0.0)
                                      + result.load_seconds + result.save_seconds)
        try:
            atomic.append_line(self.paths.segments_log, _json(record))
            if result.checkpoint:
                write_history(self.paths, self.paths.root / result.checkpoint)
        except OSError as e:
            raise CheckpointError(
                f"Could not write the run's records in {self.paths.root}: {e.strerror or e}. "
                f"The previous complete checkpoint is intact ({result.checkpoint or self.ckpt_name}); "
                "free space or fix permissions, then run the same command again."
            ) from e
        self.progress.on_segment(record)


def write_history(paths: RunPaths, ckpt_path: Path) -> None:
    """history.json and history.csv, derived from a checkpoint's state (the one source of truth)."""
    state = atomic.read_json(ckpt_path / checkpoint.STATE_FILE)
    history = state.get("history", {})
    atomic.write_json(paths.history_json, history)
    keys = sorted(history)
    rows = max((len(v) for v in history.values()), default=0)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["epoch", *keys])
    for i in range(rows):
        writer.writerow([i, *(history[k][i] if i < len(history[k]) else "" for k in keys)])
    atomic.write_bytes(paths.history_csv, out.getvalue().encode())


def _json(record: dict) -> str:
    import json

    return json.dumps(record, sort_keys=True)


class _SessionRunner:
    """Every segment in this process: save, clear the Keras session, collect, reload."""

    def __init__(self, cfg: RunConfig, manifest: dict, flag: StopFlag, on_event: Events):
        self.cfg, self.manifest, self.flag, self.on_event = cfg, manifest, flag, on_event
        self.ctx: ProcessContext | None = None

    def run(self, segment: Segment, ckpt_name: str | None, just_committed: bool) -> tuple[SegmentResult, dict]:
        extra: dict[str, Any] = {"pid": os.getpid()}
        t0 = time.perf_counter()
        if self.ctx is None:
            self.ctx = ProcessContext.open(self.cfg, self.manifest["data_seed"])
            extra["start_seconds"] = time.perf_counter() - t0
        else:
            extra["clear_seconds"] = clear_session()
        ckpt = checkpoint.named_or_latest(self.ctx.paths, ckpt_name, just_committed)
        return run_segment(self.ctx, segment, ckpt, self.flag, self.on_event,
                           extra.get("start_seconds", 0.0)), extra

    def forward(self, signum: int) -> None:
        pass  # training in this process reads the flag itself

    def abort(self) -> None:
        pass

    def close(self) -> None:
        self.ctx = None


def clear_session() -> float:
    """Clear Keras' global state and collect; keep the global dtype policy. Returns seconds."""
    import keras

    t0 = time.perf_counter()
    policy = keras.config.dtype_policy()
    keras.backend.clear_session(free_memory=True)
    gc.collect()
    keras.config.set_dtype_policy(policy)
    return time.perf_counter() - t0


def _not_started(segment: Segment, signal_name: str | None) -> SegmentResult:
    return SegmentResult(segment.index, segment.start_epoch, segment.start_epoch, "preempted", signal_name)


MIN_PATIENCE_SECONDS = 5.0  # the least a boundary waits for a pre-started worker's import before starting afresh


def _death(worker: WorkerProcess) -> str:
    """How a worker that exited early ended: its own error message, or its exit status."""
    if worker.early_error is not None:
        return worker.early_error["message"]
    code = worker.wait()
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


class _ProcessRunner:
    """Every segment in a fresh worker process; the next one starts while this one trains."""

    def __init__(self, cfg: RunConfig, manifest: dict, flag: StopFlag, on_event: Events):
        self.cfg, self.flag, self.on_event = cfg, flag, on_event
        self.current: WorkerProcess | None = None
        self.next: WorkerProcess | None = None
        self.first_import: float | None = None  # seconds this run's first worker took to import, at full priority

    def run(self, segment: Segment, ckpt_name: str | None, just_committed: bool) -> tuple[SegmentResult, dict]:
        t0 = time.perf_counter()
        worker, prestarted, abandoned = self._worker()
        self.current = worker
        ready = worker.wait_ready()
        if not prestarted and self.first_import is None:
            self.first_import = worker.import_seconds
        extra: dict[str, Any] = {"start_seconds": time.perf_counter() - t0, "pid": worker.pid,
                                 "prestarted": prestarted, "prestart_abandoned": abandoned}
        if worker.ready:
            extra["backend"] = worker.ready["backend"]
            extra["data_deferred"] = worker.ready["data_deferred"]
            extra["device_runtime_before_takeover"] = worker.ready["device_runtime_started"]
            extra["warm_up_seconds"] = worker.ready["warm_up_seconds"]
        if self.flag.requested:  # a signal came while the worker started: nothing trained, nothing lost
            worker.close()
            self.current = None
            return _not_started(segment, self.flag.signal), extra
        if not ready:
            raise self._failure(worker, worker.early_error, segment)
        worker.send({"segment": segment.__dict__, "checkpoint": ckpt_name, "just_committed": just_committed,
                     "start_seconds": extra["start_seconds"]})
        if self.cfg.prestart and self._may_be_followed(segment) and not self.flag.requested:
            self.next = WorkerProcess(self.cfg.run_dir, prestarted=True, backend=worker.ready["backend"])
        result, error = None, None
        for event in worker.events():
            kind = event.get("event")
            if kind == "result":
                result = event
            elif kind == "error":
                error = event
            else:
                self.on_event(event)
        code = worker.wait()
        self.current = None
        if result is None and error is None and self.flag.requested and code in (EXIT_RESUMABLE, -self.flag.signum):
            return _not_started(segment, self.flag.signal), extra  # stopped before it read the segment
        if result is None:
            raise self._failure(worker, error, segment)
        result.pop("event")
        return SegmentResult(**result), extra

    def _worker(self) -> tuple[WorkerProcess, bool, bool]:
        """The segment's worker, whether it was pre-started, and whether a pre-started one was given up.

        A pre-started worker that cannot take over is replaced by a fresh one,
        once: a long unattended job should not stop at a boundary for it.
        * It died while it waited (the OOM killer picks it, since on a CPU it
          holds a second copy of the data; or its start-up failed). If the
          cause is in the script, the fresh worker fails the same way and the
          run stops with its error.
        * It was still importing its backend, at the lowest CPU priority, past
          twice the time the run's first worker took at full priority: on a
          machine whose every core other jobs keep busy a fresh worker is the
          faster way on.
        """
        waiting, self.next = self.next, None
        if waiting is None:
            return WorkerProcess(self.cfg.run_dir), False, False
        patience = None if self.first_import is None else max(MIN_PATIENCE_SECONDS, 2 * self.first_import)
        try:
            if waiting.wait_ready(import_timeout=patience) or self.flag.requested:
                return waiting, True, False
            why = f"failed before its turn ({_death(waiting)})"
        except TimeoutError:
            why = f"was still importing its backend at low priority after {patience:.1f} s (the machine is busy)"
        waiting.close()
        log.warning("The pre-started worker (pid %d) %s; starting a fresh one.", waiting.pid, why)
        return WorkerProcess(self.cfg.run_dir), False, True

    def _may_be_followed(self, segment: Segment) -> bool:
        """Whether another segment may follow: planned, or one that `--segment auto` or `--max-memory` may cut.

        A segment that may end early gets a pre-started successor too, or the
        boundary it decides on would pay a cold start; when it runs to the end
        of the run after all, the waiting worker is stopped unused.
        """
        may_end_early = self.cfg.segment == AUTO or self.cfg.max_memory is not None
        return segment.end_epoch < self.cfg.epochs or may_end_early

    def _failure(self, worker: WorkerProcess, error: dict | None, segment: Segment) -> SegtrainError:
        code = worker.wait()
        if error is not None:
            cls = ScriptError if error["exit_code"] == 2 else SegtrainError
            message = error["message"]
            if self.cfg.debug and error.get("traceback"):
                message += "\n" + error["traceback"]
            exc = cls(message)
            exc.exit_code = error["exit_code"]
            return exc
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return SegtrainError(
            f"The worker of segment {segment.index + 1} (pid {worker.pid}) {how} before finishing. "
            f"Run the same command again (or `segtrain resume {self.cfg.run_dir}`) to go on from "
            "the newest complete checkpoint."
        )

    def forward(self, signum: int) -> None:
        if self.current is not None:
            self.current.signal(signum)

    def abort(self) -> None:
        import signal

        for worker in (self.current, self.next):
            if worker is not None:
                worker.signal(signal.SIGKILL)

    def close(self) -> None:
        for worker in (self.next, self.current):
            if worker is not None:
                worker.close()
        self.next = self.current = None

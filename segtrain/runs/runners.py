"""Runners: where a segment trains. One Protocol, two ways: a fresh worker process, or this process.

The segment loop asks a runner to train a segment and gets back the
`SegmentResult` and a `Launch` (how the segment was started, for its line of
segments.jsonl). Signals reach the runner through `forward` and `abort`.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from segtrain import backends
from segtrain.backends.distribution import split_cpu_early
from segtrain.config import Isolation, RunConfig, Start
from segtrain.errors import EXIT_BAD_INPUT, EXIT_RESUMABLE, ScriptError, SegtrainError
from segtrain.outcomes import SegmentOutcome
from segtrain.paths import RunPaths
from segtrain.state import checkpoint
from segtrain.telemetry.probes import CpuMeter, cpu_seconds
from segtrain.training.boundaries import AUTO
from segtrain.training.records import OnEpoch, Segment, SegmentResult
from segtrain.training.signals import StopFlag
from segtrain.worker.handle import TrialLink, WorkerProcess, WorkerSpec
from segtrain.worker.pool import WorkerPool
from segtrain.worker.protocol import (
    Assignment,
    CheckpointRef,
    EpochEnded,
    Failed,
    Finished,
    Ready,
    Returned,
    TrialCall,
    Verdict,
)


@dataclass
class Launch:
    """How a runner started a segment, and what ran beside it: what it adds to the segment's line of segments.jsonl."""

    pid: int
    start_seconds: float | None = None  # a new process's start, or the wait for a pre-started one
    clear_seconds: float | None = None  # session isolation: clearing the previous segment's session
    prestarted: bool | None = None
    start: Start | None = None  # how the worker began: forked by the zygote, or a fresh interpreter
    start_note: str | None = None  # a fresh interpreter where a fork was asked for: why
    prestart_abandoned: bool | None = None  # a pre-started worker could not take over and was replaced
    backend: str | None = None
    data_deferred: bool | None = None
    device_runtime_before_takeover: bool | None = None
    warm_up_seconds: float | None = None
    # CPU seconds the pre-started worker had used when the segment came (while the previous one trained)
    prestart_cpu_seconds: float | None = None
    # per epoch of this segment, CPU seconds the next segment's pre-started worker used during it; None: none ran
    spare_cpu_seconds: list[float] | None = None

    def to_json(self) -> dict[str, Any]:
        """Every field, those that do not apply as null (a session's `prestarted`, a process's `clear_seconds`)."""
        return asdict(self)


class FailedAfterTraining(Exception):
    """A launched script (`segtrain run`) failed after its `fit` call returned: the segment itself is complete."""

    def __init__(self, result: SegmentResult, launch: Launch, error: SegtrainError):
        super().__init__(str(error))
        self.result, self.launch, self.error = result, launch, error


class Runner(Protocol):
    def train(self, segment: Segment, start: CheckpointRef | None) -> tuple[SegmentResult, Launch]:
        """Train `segment` from the checkpoint `start` (None: a new model)."""

    def forward(self, signum: int) -> None:
        """A stop signal arrived: pass it on to where training runs."""

    def abort(self) -> None:
        """The user insists (a second Ctrl-C): kill what trains, now."""

    def close(self) -> None:
        """The run is over: release what the runner holds."""


def runner_for(
    cfg: RunConfig,
    data_seed: int,
    flag: StopFlag,
    on_epoch: OnEpoch,
    *,
    verdicts: bool = False,
    pool: WorkerPool | None = None,
    more_runs: bool = False,
    next_run: Callable[[], Path | None] | None = None,
    trial: TrialLink | None = None,
) -> Runner:
    """The runner of `cfg.isolation`. `pool`: workers shared across runs (a sweep's); else the run's own."""
    if cfg.isolation == Isolation.PROCESS:
        own = pool is None
        pool = pool or WorkerPool(WorkerSpec.of(cfg, RunPaths(cfg.directory).compilation_cache))
        return ProcessRunner(
            cfg,
            flag,
            on_epoch,
            pool,
            owns_pool=own,
            verdicts=verdicts,
            more_runs=more_runs,
            next_run=next_run,
            trial=trial,
        )
    return SessionRunner(cfg, data_seed, flag, on_epoch)


class SessionRunner:
    """Every segment in this process: save, clear the Keras session, collect, reload."""

    def __init__(self, cfg: RunConfig, data_seed: int, flag: StopFlag, on_epoch: OnEpoch):
        self.cfg, self.data_seed, self.flag, self.on_epoch = cfg, data_seed, flag, on_epoch
        self.ctx: Any = None  # the ProcessContext, once the first segment opened it
        split_cpu_early()  # as a worker does first: before this process imports JAX (the first segment does)

    def train(self, segment: Segment, start: CheckpointRef | None) -> tuple[SegmentResult, Launch]:
        from segtrain.training.segment import ProcessContext, run_segment  # Keras: only a session run needs it here

        t0 = time.perf_counter()
        if self.ctx is None:
            self.ctx = ProcessContext.open(self.cfg, self.data_seed)
            launch = Launch(os.getpid(), start_seconds=time.perf_counter() - t0)
        else:
            launch = Launch(os.getpid(), clear_seconds=clear_session())
        ckpt = None if start is None else checkpoint.named_or_latest(self.ctx.paths, start.name, start.committed_here)
        result = run_segment(self.ctx, segment, ckpt, self.flag, self.on_epoch, launch.start_seconds or 0.0)
        return result, launch

    def forward(self, signum: int) -> None:
        pass  # training in this process reads the flag itself

    def abort(self) -> None:
        pass

    def close(self) -> None:
        self.ctx = None


def stopped_by_loss(result: SegmentResult, lost: str) -> SegmentResult:
    """A segment whose checkpoint every process passed, after which another process was lost (leaving together).

    Where the run would go on, it stops there, resumable: the next segment could not start without the lost one.
    """
    if result.outcome != SegmentOutcome.BOUNDARY:
        return result
    return replace(result, outcome=SegmentOutcome.PREEMPTED, stop_reason=lost)


def clear_session() -> float:
    """Clear Keras' global state and collect; keep the global dtype policy. Returns seconds."""
    import keras

    t0 = time.perf_counter()
    policy = keras.config.dtype_policy()
    keras.backend.clear_session(free_memory=True)
    gc.collect()
    keras.config.set_dtype_policy(policy)
    return time.perf_counter() - t0


def failure(worker: WorkerProcess, error: Failed | None, cfg: RunConfig, which: str, note: str = "") -> SegtrainError:
    """The error a worker's failure ends the run with: its message (and `note`), or how it died and its last words."""
    code = worker.wait()
    if error is not None:
        message = error.message + note
        if cfg.debug and error.traceback:
            message += "\n" + error.traceback
        elif error.traceback:
            message += f"\n(its traceback is in {worker.output.path})"
        exc = ScriptError(message) if error.exit_code == EXIT_BAD_INPUT else SegtrainError(message)
        exc.exit_code = error.exit_code
        return exc
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return SegtrainError(
        f"The worker {which} (pid {worker.pid}) {how} before finishing. "
        f"Run the same command again (or `segtrain resume {cfg.part_of or cfg.directory}`) to go on from "
        f"the newest complete checkpoint.\n{worker.last_words()}"
    )


class ProcessRunner:
    """Every segment in a fresh worker process; the pool starts the next one while this one trains.

    `verdicts`: the worker waits after each epoch for the verdict of `on_epoch`
    (a sweep's pruner); without, it trains on and only reports its epochs.
    `more_runs`: another run follows this one in this process (a sweep's next
    trial), so the last segment's spare is started for it; `next_run` names
    that run, where it can be asked for now, and the spare prepares it.
    """

    def __init__(
        self,
        cfg: RunConfig,
        flag: StopFlag,
        on_epoch: OnEpoch,
        pool: WorkerPool,
        *,
        owns_pool: bool = True,
        verdicts: bool = False,
        more_runs: bool = False,
        next_run: Callable[[], Path | None] | None = None,
        trial: TrialLink | None = None,
    ):
        self.cfg, self.flag, self.on_epoch, self.pool, self.owns_pool = cfg, flag, on_epoch, pool, owns_pool
        self.verdicts, self.more_runs, self.next_run, self.trial = verdicts, more_runs, next_run, trial
        self.current: WorkerProcess | None = None

    def train(self, segment: Segment, start: CheckpointRef | None) -> tuple[SegmentResult, Launch]:
        t0 = time.perf_counter()
        run_dir = self.cfg.directory
        waiting = self.pool.spare  # what it used so far ran beside the previous segment, whether it takes over or not
        spare_cpu = None if waiting is None else cpu_seconds(waiting.pid)
        worker, prestarted, abandoned = self.pool.take(run_dir, stopping=self.flag.requested)
        self.current = worker
        ready = worker.wait_ready()
        if ready and self.trial is not None and worker.at_optimize is not None:  # its objective, up to `fit`
            ready = worker.begin_trial(self.trial, show=False) and worker.ready is not None
        self.pool.note_import(worker, prestarted)
        launch = Launch(
            worker.pid,
            start_seconds=time.perf_counter() - t0,
            prestarted=prestarted,
            prestart_abandoned=abandoned,
            prestart_cpu_seconds=spare_cpu,
            start=worker.start,
            start_note=worker.start_note,
        )
        if worker.ready is not None:
            launch.start, launch.start_note = worker.ready.start, worker.ready.start_note  # a respawn's too
            launch.backend = worker.ready.backend
            launch.data_deferred = worker.ready.data_deferred
            launch.device_runtime_before_takeover = worker.ready.device_runtime_started
            launch.warm_up_seconds = worker.ready.warm_up_seconds
        # A signal came while the worker started: nothing trained, nothing lost. (Many hosts: the worker still
        # joins the others, to stop them too, and tells them at once.)
        if self.flag.requested and self.cfg.hosts is None:
            worker.close()
            self.current = None
            return SegmentResult.not_started(segment, signal=self.flag.signal), launch
        if not ready:
            raise failure(worker, worker.early_error, self.cfg, f"of segment {segment.index + 1}")
        worker.assign(
            Assignment(str(run_dir), segment, start, launch.start_seconds or 0.0, self.verdicts, self.flag.signal)
        )
        if self.cfg.prestart and not self.flag.requested:
            if self._may_be_followed(segment):
                self.pool.prestart(run_dir, launch.backend)
            elif self.more_runs:
                self.pool.prestart(None, launch.backend)
                if self.next_run is not None and self.pool.spare_forked() and (ahead := self.next_run()) is not None:
                    self.pool.prepare(ahead)
        spare = None if self.pool.spare is None else CpuMeter(self.pool.spare.pid)
        result, error, goes_on = self._follow(worker, spare)
        launch.spare_cpu_seconds = None if spare is None else spare.used
        if goes_on and result is not None:
            self.pool.keep(worker)  # a launched script's next fit() call: the worker waits there for its stage
            self.current = None
            return result, launch
        code = worker.wait()
        worker.close()
        self.current = None
        stopped_early = code in (EXIT_RESUMABLE, -(self.flag.signum or 0))
        if result is None and error is None and self.flag.requested and stopped_early:
            return SegmentResult.not_started(segment, signal=self.flag.signal), launch  # stopped before its segment
        if result is None and error is None and self.trial is not None and self.trial.returned is not None:
            raised = self.trial.returned.error  # the objective's own error, raised while its fit() trained
            error = Failed(
                EXIT_BAD_INPUT, f"{self.cfg.script}: trial {self.trial.request.number} raised in fit(): {raised}"
            )
        if result is None:
            lost = self._peers_lost(worker, error)
            if lost is not None:  # many hosts: another process is gone; the run goes on when all start again
                return SegmentResult.not_started(segment, lost=lost), launch
            raise failure(worker, error, self.cfg, f"of segment {segment.index + 1}")
        if error is not None or code < 0:  # it ended badly after its result: many hosts, leaving the others?
            lost = self._peers_lost(worker, error)
            if lost is not None:
                return stopped_by_loss(result, lost), launch
        if error is not None:  # a launched script's own code after `fit` failed
            note = (
                f"\nThe run's training is complete and saved in {run_dir}; the same command runs the script "
                "again, its fit() returning the trained model at once."
            )
            raise FailedAfterTraining(result, launch, failure(worker, error, self.cfg, "", note))
        return result, launch

    def _follow(
        self, worker: WorkerProcess, spare: CpuMeter | None
    ) -> tuple[SegmentResult | None, Failed | None, bool]:
        """Read the worker's messages until it exits: its result, its error, and whether it goes on.

        `spare` meters the next segment's worker, started beside this one: it
        is marked at each epoch's end, for the CPU it took during that epoch.
        A launched script's worker whose script calls `fit` again after its
        result says `Ready` for that next stage, and waits there: it goes on.
        """
        result, error = None, None
        for message in worker.messages():
            if isinstance(message, Ready) and result is not None:
                worker.next_stage(message)
                return result, None, True
            if isinstance(message, TrialCall) and self.trial is not None:
                worker.tell(self.trial.relay(message).encode())
            elif isinstance(message, Returned) and self.trial is not None:
                self.trial.returned = message
            if isinstance(message, EpochEnded):
                if spare is not None:
                    spare.mark()
                verdict = self.on_epoch(message.record)
                if self.verdicts:
                    worker.reply(Verdict(verdict))
            elif isinstance(message, Finished):
                result = message.result
            elif isinstance(message, Failed):
                error = message
        return result, error, False

    def _peers_lost(self, worker: WorkerProcess, error: Failed | None) -> str | None:
        """Many hosts: why the worker ended, where another process's loss ended it (resumable); else None."""
        if self.cfg.hosts is None:
            return None
        if error is not None:
            return error.message if error.exit_code == EXIT_RESUMABLE else None
        worker.wait()
        worker.output.drain()
        said = "\n".join(worker.output.tail)  # all it kept: the runtime's fatal line comes before its stack trace
        if worker.ready is not None and backends.by_name(worker.ready.backend).peers_lost(said):
            return "the loss of another process of the run (its runtime ended this host's worker)"
        return None

    def _may_be_followed(self, segment: Segment) -> bool:
        """Whether another segment may follow: planned, or one that `--segment auto` or `--max-memory` may cut.

        A segment that may end early gets a pre-started successor too, or the
        boundary it decides on would pay a cold start; when it runs to the end
        of the run after all, the waiting worker is stopped unused.
        """
        if segment.start_epoch == segment.end_epoch:  # a launched script's run, complete: nothing trains
            return False
        may_end_early = self.cfg.segment == AUTO or self.cfg.max_memory is not None
        return segment.end_epoch < self.cfg.epochs or may_end_early

    def forward(self, signum: int) -> None:
        if self.current is not None:
            self.current.signal(signum)

    def abort(self) -> None:
        for worker in (self.current, self.pool.spare):
            if worker is not None:
                worker.signal(signal.SIGKILL)

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
        if self.owns_pool:
            self.pool.close()
        else:
            self.pool.discard(self.cfg.directory)

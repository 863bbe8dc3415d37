"""A segment worker: one fresh process that trains one segment.

The supervisor starts it as `python -m segtrain.worker RUN_DIR`, with a pipe for
events on the descriptor named by `SEGTRAIN_EVENT_FD`. The worker imports the
backend and the script and loads the data, says `ready`, then waits for one
command on stdin naming the segment and the checkpoint to start from. So a
worker can be started while the previous segment still trains, and only waits
for its checkpoint. A worker started ahead like that (`SEGTRAIN_PRESTARTED=1`)
imports the backend the previous worker used (`SEGTRAIN_BACKEND`) at the lowest
CPU priority (see `backend_import`). Where no accelerator may be, it also builds
the model and traces its train step before it says `ready` (see
`segment.warm_up`). It dies with its supervisor (PR_SET_PDEATHSIG on Linux).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from segtrain.errors import EXIT_FAILED, EXIT_OK, EXIT_RESUMABLE, SegtrainError
from segtrain.worker.handle import BACKEND_ENV, EVENT_FD_ENV, PRESTARTED_ENV


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(EXIT_FAILED)


def _exit(code: int) -> None:
    """Leave without TensorFlow's teardown (~0.6 s): everything durable is already on disk."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _warm_up(ctx) -> float | None:
    """Seconds spent warming up, or None where it failed: the take-over then builds and reports afresh."""
    from segtrain.training.segment import warm_up

    try:
        return warm_up(ctx)
    except Exception:  # noqa: BLE001 - the same code runs again at the take-over, which reports errors
        if ctx.cfg.debug:
            traceback.print_exc()
        return None


def _backend() -> str:
    """The Keras backend this worker runs: the one a pre-started successor imports ahead."""
    import keras

    return keras.backend.backend()


def main(run_dir: str) -> None:
    from segtrain.state import checkpoint
    from segtrain.backends.low_priority import import_at_low_priority
    from segtrain.config import RunConfig
    from segtrain.backends.devices import defer_data, device_runtime_started
    from segtrain.training.script import TrainingScript
    from segtrain.run.paths import RunPaths, read_manifest
    from segtrain.training.segment import ProcessContext, Segment, StopFlag, run_segment
    from segtrain.training.signals import SignalPolicy

    _die_with_parent(int(os.environ.get("SEGTRAIN_PARENT_PID", os.getppid())))
    stream = os.fdopen(int(os.environ[EVENT_FD_ENV]), "w", buffering=1)

    def emit(event: dict) -> None:
        stream.write(json.dumps(event) + "\n")

    paths = RunPaths(Path(run_dir))
    flag = StopFlag()
    try:
        cfg = RunConfig.from_json(read_manifest(paths)["config"])
        SignalPolicy(cfg.signals, flag).install()
        prestarted = os.environ.get(PRESTARTED_ENV) == "1"
        t0 = time.perf_counter()
        if prestarted and os.environ.get(BACKEND_ENV):
            import_at_low_priority(os.environ[BACKEND_ENV])
        script = TrainingScript.load(cfg.script, cfg.debug)
        emit({"event": "imported", "seconds": time.perf_counter() - t0})
        data_seed = read_manifest(paths)["data_seed"]
        deferred = defer_data()
        ctx = None if deferred else ProcessContext.open(cfg, data_seed, script)
        warm_seconds = _warm_up(ctx) if ctx is not None and prestarted else None
        emit({"event": "ready", "pid": os.getpid(), "backend": _backend(),
              "data_deferred": deferred, "device_runtime_started": device_runtime_started(),
              "warm_up_seconds": warm_seconds})
        line = sys.stdin.readline()
        if not line or flag.requested:
            _exit(EXIT_OK if not line else EXIT_RESUMABLE)
        command = json.loads(line)
        if ctx is None:  # taking over: now the device may be used
            ctx = ProcessContext.open(cfg, data_seed, script)
        segment = Segment(**command["segment"])
        ckpt = checkpoint.named_or_latest(paths, command.get("checkpoint"), command.get("just_committed", False))
        result = run_segment(ctx, segment, ckpt, flag, emit, command.get("start_seconds", 0.0))
        emit({"event": "result", **result.to_json()})
        _exit(EXIT_RESUMABLE if result.outcome == "preempted" else EXIT_OK)
    except SegtrainError as e:
        emit({"event": "error", "exit_code": e.exit_code, "message": str(e)})
        _exit(e.exit_code)
    except BaseException as e:  # noqa: BLE001 - report anything to the supervisor
        emit({"event": "error", "exit_code": EXIT_FAILED,
              "message": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
        _exit(EXIT_FAILED)



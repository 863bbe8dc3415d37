"""A segment worker: one fresh process that trains one segment (see `segtrain.worker.protocol`).

The parent starts it as `python -m segtrain.worker RUN_DIR`. The worker imports
the backend and the script and loads the data, sends `Ready`, then waits for
its `Assignment` on stdin. So a worker can be started while the previous
segment still trains, and only waits for its checkpoint. A worker started
ahead like that imports the backend the previous worker used at the lowest CPU
priority (see `segtrain.backends.low_priority`). Where no accelerator may be,
it also builds the model and traces its train step before it is ready (see
`segtrain.training.warm_up`). With many hosts it joins the other
hosts' workers once assigned (JAX's runtime must start after that), so it only
imports ahead. It dies with its parent (PR_SET_PDEATHSIG on Linux).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segtrain import backends
from segtrain.backends import distribution
from segtrain.backends.devices import defer_data, device_runtime_started
from segtrain.backends.distribution import split_cpu_early
from segtrain.backends.hosts import ALONE
from segtrain.backends.low_priority import import_at_low_priority
from segtrain.config import RunConfig, Start, Verbosity
from segtrain.errors import EXIT_FAILED, EXIT_OK, EXIT_RESUMABLE, ScriptError, SegtrainError
from segtrain.outcomes import SegmentOutcome
from segtrain.paths import RunPaths
from segtrain.state import checkpoint
from segtrain.state.manifest import read_run
from segtrain.training import launched
from segtrain.training.records import SegmentResult
from segtrain.training.references import IN_WORKER
from segtrain.training.script import TrainingScript
from segtrain.training.signals import SignalPolicy, StopFlag
from segtrain.training.together import start_together
from segtrain.worker import kerastuner, optimize, output, questions, stages
from segtrain.worker.protocol import (
    PROTOCOL,
    Asked,
    Assignment,
    EpochEnded,
    Failed,
    Finished,
    Imported,
    Message,
    Question,
    Ready,
    Returned,
    RunTrial,
    Verdict,
    WorkerEnv,
    decode_request,
    encode,
)


def _die_with_parent(parent: int) -> None:
    try:
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


def _warm_up(ctx: Any, fresh: bool = False) -> float | None:
    """Seconds spent warming up, or None where it failed: the take-over then builds and reports afresh.
    `fresh`: for a new run's first segment (`training.warm_up`)."""
    from segtrain.training.warm_up import warm_up  # deferred: imports Keras

    try:
        return warm_up(ctx, fresh)
    except Exception:  # the same code runs again at the take-over, which reports errors
        if ctx.cfg.debug:
            traceback.print_exc()
        return None


def main() -> None:
    split_cpu_early()  # before anything imports JAX
    if (parents := WorkerEnv.protocol_of()) != PROTOCOL:  # before reading the rest, in whatever format it is
        print(
            f"segtrain: this worker speaks protocol {PROTOCOL}, its parent {parents}: segtrain changed "
            "while the run trained. Run the same command again.",
            file=sys.stderr,
            flush=True,
        )
        _exit(EXIT_FAILED)
    env = WorkerEnv.from_environ()
    environ = dict(os.environ)  # as the parent gave it, before the script changes it: a respawn starts from it
    cfg = env.config
    _die_with_parent(env.parent_pid)
    os.environ[IN_WORKER] = "1"  # the script's own segtrain.fit(...) call, unguarded, must not start a run here
    levels = {Verbosity.QUIET: logging.ERROR, Verbosity.VERBOSE: logging.INFO}
    logging.basicConfig(level=levels.get(cfg.verbosity, logging.WARNING), format="segtrain: %(message)s")
    stream = os.fdopen(env.event_fd, "w", buffering=1)

    def send(message: Message) -> None:
        stream.write(encode(message))

    flag = StopFlag()
    try:
        SignalPolicy(cfg.signals, flag).install()
        t0 = time.perf_counter()
        if env.prestarted and env.backend:
            import_at_low_priority(env.backend)
        if cfg.launched:
            _serve_launched(env, environ, flag, send, t0)
            _exit(EXIT_OK)  # the script's own end, after its last segment
        script = TrainingScript.load(cfg.script, cfg.debug, module=cfg.module, functions=cfg.functions)
        _respawn_for_another_backend(env, environ)
        send(Imported(time.perf_counter() - t0))
        _serve(env, script, flag, send)
    except SegtrainError as e:
        send(Failed(e.exit_code, str(e)))
        _exit(e.exit_code)
    except BaseException as e:  # report anything to the parent
        if cfg.hosts is not None and _peers_lost(str(e)):
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            send(Failed(EXIT_RESUMABLE, f"the loss of another process of the run ({first[:300]})"))
            _exit(EXIT_RESUMABLE)
        send(Failed(EXIT_FAILED, f"{type(e).__name__}: {e}", traceback.format_exc()))
        _exit(EXIT_FAILED)


def _respawn_for_another_backend(env: WorkerEnv, environ: dict[str, str]) -> None:
    """A forked worker whose script chose another backend than the zygote imported (`KERAS_BACKEND` set before
    `import keras`) becomes a fresh interpreter in place (same pid, same pipes), as the script expects; the pool
    then forks the run's next workers from a zygote of that backend (`Ready.backend`)."""
    wanted = os.environ.get("KERAS_BACKEND")
    if env.zygote_backend is None or wanted in (None, env.zygote_backend):
        return
    note = f"the script chose the backend {wanted!r}, the zygote had imported {env.zygote_backend!r}"
    os.set_inheritable(env.event_fd, True)
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-m", "segtrain.worker", *sys.argv[1:]]
    os.execve(sys.executable, argv, dict(env.respawned_environ(environ, note), PYTHONUNBUFFERED="1"))


def _ready(
    env: WorkerEnv,
    backend: str,
    deferred: bool,
    warm_seconds: float | None = None,
    fit_epochs: int | None = None,
    stage: int = 1,
) -> Ready:
    start = Start.SPAWN if env.zygote_backend is None else Start.FORK
    runtime = device_runtime_started()
    return Ready(os.getpid(), backend, deferred, runtime, warm_seconds, fit_epochs, stage, start, env.start_note)


def _peers_lost(text: str) -> bool:
    """Whether an error says another host's process is gone (its collective's peer closed, the runtime lost it)."""
    if "keras" not in sys.modules:
        return False

    return backends.current().peers_lost(text)


def _serve(env: WorkerEnv, script: Any, flag: Any, send: Callable[[Message], None]) -> None:
    """Prepare what can be prepared, say so, wait for the assignment, train it, report, exit."""
    deferred = defer_data() or env.config.hosts is not None  # the runtime starts after joining the other hosts
    ctx = None if deferred or env.run_dir is None else _context(Path(env.run_dir), script)
    warm_seconds = _warm_up(ctx) if ctx is not None and env.prestarted else None
    send(_ready(env, backends.current().name, deferred, warm_seconds))

    def prepare(run_dir: Path) -> None:
        """A sweep's next trial (cv's next fold), opened while the current one trains: its data, its model built
        and traced."""
        nonlocal ctx
        seconds = None
        if not deferred:
            try:
                ctx = _context(run_dir, script)
            except Exception:  # its load_data() failed: the take-over runs it again, and reports it
                if env.config.debug:
                    traceback.print_exc()
            else:
                seconds = _warm_up(ctx, fresh=not ctx.paths.checkpoint_dirs())
        send(_ready(env, backends.current().name, deferred, seconds))

    assignment = _assignment(flag, together=env.config.hosts is not None, script=script, send=send, prepare=prepare)
    run_dir = Path(assignment.run_dir)
    peers = ALONE if env.config.hosts is None else backends.current().join(env.config.hosts)
    if ctx is None or ctx.paths.root != run_dir:  # taking over: now the device may be used
        ctx = _context(run_dir, script, peers)
    result = _train(ctx, assignment, flag, send)
    peers.leave()
    _exit(EXIT_RESUMABLE if result.outcome == SegmentOutcome.PREEMPTED else EXIT_OK)


def _assignment(
    flag: Any,
    together: bool = False,
    script: Any = None,
    send: Callable[[Message], None] | None = None,
    prepare: Callable[[Path], None] | None = None,
) -> Assignment:
    """Wait for the assignment; exit where the parent closed stdin (the worker is not needed) or a signal came.

    `together` (many hosts): a stop signal does not end the worker before its segment: it joins the others
    and they all stop there (`training.together`); the parent may pass on one it got (`Assignment.stop`).
    `script`, `send`: a sweep's questions about the script come first, and are answered (`worker.questions`);
    `prepare`: sets the worker up for the run a question names (`Asked.PREPARE`), and says `Ready` again.
    """
    while True:
        line = sys.stdin.readline()
        if not line or (flag.requested and not together):
            _exit(EXIT_OK if not line else EXIT_RESUMABLE)
        request = decode_request(line)
        if isinstance(request, Assignment):
            break
        assert isinstance(request, Question) and script is not None and send is not None, request
        if request.asked == Asked.PREPARE:
            assert prepare is not None and request.run_dir is not None, request
            prepare(Path(request.run_dir))
        else:
            questions.answer(request, script, send)
    assignment = request
    if assignment.stop and not flag.requested:
        flag.signal = assignment.stop
    return assignment


def _train(
    ctx: Any, assignment: Assignment, flag: Any, send: Callable[[Message], None], pruned_by_trial: bool = False
) -> Any:
    """Train the assigned segment; send its result and return it.

    `pruned_by_trial`: a launched search's trial, whose objective's pruning callback may raise
    `optuna.TrialPruned` from an epoch's end: the segment ends there, stopped, and the error goes on to the
    objective (`segtrain.worker.optimize`).
    """
    from segtrain.training.segment import run_segment  # deferred: imports Keras

    ref, segment = assignment.checkpoint, assignment.segment
    ckpt = None
    if ref is not None and ctx.peers.writes:
        ckpt = checkpoint.named_or_latest(ctx.paths, ref.name, ref.committed_here)
    if ctx.peers.count > 1:
        segment, ckpt = start_together(ctx.peers, ctx.paths, segment, ckpt, flag)
        if flag.requested:  # a process got a stop signal before the segment: all stop before it trains
            result = SegmentResult.not_started(segment, signal=flag.signal)
            send(Finished(result))
            return result

    def on_epoch(record: dict[str, Any]) -> str | None:
        send(EpochEnded(record))
        if not assignment.verdicts:
            return None
        line = sys.stdin.readline()
        if not line:  # the parent gave up on this run (it failed, or was stopped): the checkpoints stay
            _exit(EXIT_FAILED)
        return Verdict.decode(line).stop_reason

    try:
        result = run_segment(ctx, segment, ckpt, flag, on_epoch, assignment.start_seconds)
    except Exception as e:
        if not (pruned_by_trial and type(e).__name__ == "TrialPruned"):
            raise
        stopped = SegmentOutcome.STOPPED
        send(Finished(SegmentResult(segment.index, segment.start_epoch, segment.start_epoch, stopped, "pruned", True)))
        raise
    send(Finished(result))
    return result


def _serve_launched(
    env: WorkerEnv, environ: dict[str, str], flag: Any, send: Callable[[Message], None], t0: float
) -> None:
    """`segtrain run`: run the script from the top; each `model.fit(...)` call trains the stage it is.

    The worker waits for its assignment inside the call of the stage it trains,
    once the script has loaded its data and built its model; where an
    accelerator may be, a pre-started worker waits before it runs the script at
    all, so that it holds no device memory while another trains. A call whose
    stage is trained already, and followed by another, gets its model state and
    history back at once. Where the stage goes on after the segment, the worker
    ends inside `fit`; after the stage's last segment, `fit` returns the stage's
    `History` and the script goes on; at its next `fit` call the worker says
    `Ready` again and waits for that stage's assignment.
    """
    from segtrain.training.segment import restore  # deferred: imports Keras

    backend = backends.current()
    distribution.split_cpu()  # before the script makes tensors
    if env.config.seed is not None:
        backend.seed(env.config.seed)
    send(Imported(time.perf_counter() - t0))
    root = RunPaths(env.config.directory)  # the run (a trial's, in a search): its first stage, and its later ones
    assignment, trained = None, False

    def run_trial(request: RunTrial, outcome: Callable[[Any], Returned]) -> None:
        """A script's search, in a worker for one trial: `outcome` once (the objective, or KerasTuner's run_trial),
        its fit calls the stages of the trial's run."""
        nonlocal root
        root = RunPaths(Path(request.run_dir))
        output.mark_fresh()  # what it prints from here is the trial's own
        try:
            message = outcome(questions.RemoteTrial(send, sys.stdin.readline))
        except SegtrainError:
            raise
        except Exception as e:  # the objective's own: the driver raises it, study.optimize decides (`catch`)
            message = optimize.returned(error=e)
        send(message)
        _exit(EXIT_OK)

    def on_fit(call: launched.InterceptedFit) -> Any:
        nonlocal assignment, trained
        stage = root.stage(call.stage)
        ended = None if stages.assigned(assignment, stage) else stages.stage_trained(root, call.stage)
        if ended is None and not stages.assigned(assignment, stage) and (assignment is None or trained):
            if assignment is None:  # (one that has its assignment already began from the backend the run uses)
                _respawn_for_another_backend(env, environ)
            send(_ready(env, backend.name, False, fit_epochs=call.epochs, stage=call.stage))
            assignment, trained = _assignment(flag), False
        if not stages.assigned(assignment, stage):  # assigned a stage further on: this one must be trained already
            ended = ended or stages.stage_trained(root, call.stage)
            if ended is None:
                raise ScriptError(
                    f"{env.config.script}: its fit() call {call.stage} has not been trained, but this worker was "
                    f"assigned {assignment.run_dir if assignment else None}. Did the script change its fit() calls? "
                    "Use another --run-dir, or --force to start the run over."
                )
            ctx = _context(stage, call.as_script())
            _, state = restore(ctx, call.model, ended)
            return launched.history(call.model, state.history, ctx.data.steps_per_epoch, call.initial_epoch)
        assert assignment is not None
        ctx = _context(Path(assignment.run_dir), call.as_script())
        if call.epochs != ctx.cfg.epochs:
            raise ScriptError(
                f"{env.config.script}: model.fit(...) trains {call.epochs} epochs, but the run in {ctx.paths.root} "
                f"trains {ctx.cfg.epochs} epochs: run it with `segtrain run` (the script's epochs extend the run), "
                "or use another --run-dir."
            )
        segment = assignment.segment
        if segment.start_epoch == segment.end_epoch:  # the stage is complete: its model, for the rest of the script
            result, state = restore(ctx, call.model, stages.final_checkpoint(ctx, assignment))
            history = state.history
            send(Finished(result))
        else:
            ctx.warm_model = call.model  # the script's own model object trains (and is what it evaluates after)
            result = _train(ctx, assignment, flag, send, pruned_by_trial=True)
            if result.outcome not in (SegmentOutcome.FINISHED, SegmentOutcome.STOPPED):
                _exit(EXIT_RESUMABLE if result.outcome == SegmentOutcome.PREEMPTED else EXIT_OK)
            history = stages.checkpoint_history(ctx, result.checkpoint)
        trained = True
        return launched.history(call.model, history, ctx.data.steps_per_epoch, call.initial_epoch)

    script = env.config.script
    libraries = (optimize.OptimizeCalls, kerastuner.SearchCalls)
    searches = [library(root.root, script, send, sys.stdin.readline, run_trial) for library in libraries]
    # A spare waits before the script runs where a device may be; not for a search, which is told its trial
    # at the search call (a search script's top loads data; its trials build and train in the objective).
    if env.prestarted and defer_data() and not any(search.wanted() for search in searches):
        send(_ready(env, backend.name, True))
        assignment = _assignment(flag)
    with contextlib.ExitStack() as taken:
        for search in searches:
            if search.wanted():
                taken.enter_context(search.taken_over())
        fits = launched.run_script(script, tuple(env.config.script_args), on_fit, env.config.debug)
    if fits == 0 and not any(search.calls for search in searches):
        raise launched.no_fit(script)


def _context(run_dir: Path, script: Any, peers: Any = ALONE) -> Any:
    """The run's options, its data and the script with its params: what training in `run_dir` needs."""
    from segtrain.training.segment import ProcessContext  # deferred: imports Keras

    _, manifest = read_run(run_dir)
    cfg = RunConfig.from_json(dict(manifest.config, run_dir=str(run_dir)))
    return ProcessContext.open(cfg, manifest.seed, script, peers)

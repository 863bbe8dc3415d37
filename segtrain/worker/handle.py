"""A worker as the parent holds it: start it, wait until it is ready, assign its segment, read its messages."""

from __future__ import annotations

import dataclasses
import io
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from segtrain.config import RunConfig, Start
from segtrain.worker.output import STDERR, STDOUT, Echo, WorkerOutput
from segtrain.worker.protocol import (
    Assignment,
    AtOptimize,
    Described,
    Failed,
    Imported,
    Message,
    Proposed,
    Question,
    Ready,
    Returned,
    RunTrial,
    TrialAnswer,
    TrialCall,
    Verdict,
    WorkerEnv,
    decode,
)
from segtrain.worker.zygote import ForkedWorker, Zygote


def _refuse(call: TrialCall) -> TrialAnswer:
    return TrialAnswer(error=f"trial.{call.name}: no trial to ask")


def _to_terminal(line: str, stream: str) -> None:
    """A worker's line on segtrain's stream of the same name, above the progress bar (tqdm keeps the bar whole).

    The bar is on stderr: a line for stdout clears it and draws it again, on stderr, and nothing of it reaches
    stdout. Flushed at once, so that a redirected stdout (a file, a pipe) holds each line as it comes.
    """
    from tqdm.auto import tqdm

    file = sys.stdout if stream == STDOUT else sys.stderr
    tqdm.write(line, file=file)
    file.flush()


@dataclass
class TrialLink:
    """A launched search's trial whose run this is (`segtrain.worker.optimize`): what its workers are told, who
    answers their trial's calls (the driver, through the parent), and what its objective returned, once it has."""

    request: RunTrial
    relay: Callable[[TrialCall], TrialAnswer]
    returned: Returned | None = None


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker of a process's runs shares: the run's options, whole, and where their lines go."""

    config: RunConfig  # the script, the stop signals, what it may print, a launched script's seed and args, hosts
    echo: Echo = _to_terminal  # where a worker's lines that are shown go: its stdout's to stdout, stderr's to stderr
    compilation_cache: Path | None = None  # where the workers share compiled code (the run's, sweep's or cv's)

    @classmethod
    def of(cls, cfg: RunConfig, compilation_cache: Path | None = None) -> WorkerSpec:
        """The spec of a `RunConfig`'s workers; `compilation_cache`: the job directory's (`RunPaths` and others)."""
        return cls(cfg, compilation_cache=compilation_cache)


class WorkerProcess:
    """One worker and its message pipe: a `python -m segtrain.worker` child, or the same forked by a zygote.

    `run_dir`: the run it prepares for (loads the data, warms up) before its
    assignment; None: it only imports, and sets up the run its assignment names.
    The child runs in its own session, so a Ctrl-C at the terminal reaches
    only the parent, which forwards it once.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        run_dir: Path | None,
        prestarted: bool = False,
        backend: str | None = None,
        zygote: Zygote | None = None,
        environ: Mapping[str, str] | None = None,
        replays: bool = False,
    ):
        """`zygote`: fork the worker from it where it can (else a fresh interpreter, `start_note` saying why);
        `environ`: the worker's environment, the parent's where None; `replays`: a launched script's worker
        after the first, whose script prints again what the first showed before its stage (its log keeps it)."""
        read_fd, write_fd = os.pipe()
        env = WorkerEnv(
            event_fd=write_fd,
            parent_pid=os.getpid(),
            config=dataclasses.replace(spec.config, script=Path(spec.config.script).resolve()),
            run_dir=None if run_dir is None else str(run_dir),
            prestarted=prestarted,
            backend=backend,
        )
        base = dict(os.environ if environ is None else environ, PYTHONUNBUFFERED="1")
        # The run in the command line only names it for `ps`: the worker reads everything from `env`.
        argv = [] if run_dir is None else [str(run_dir)]
        self.run_dir = run_dir
        self.prestarted = prestarted
        self.launched = spec.config.launched  # its script may call fit again: its stdin stays open for the next stage
        self.replays = replays
        forked, self.start_note = None, None
        if zygote is not None:
            self.start_note = zygote.wait_ready()
            if self.start_note is None:
                own = dataclasses.replace(env, zygote_backend=zygote.backend).to_environ()
                forked, self.start_note = zygote.fork(dict(base, **own), argv, write_fd)
        self.start = Start.SPAWN if forked is None else Start.FORK
        self.proc: subprocess.Popen[bytes] | ForkedWorker = forked or subprocess.Popen(
            [sys.executable, "-m", "segtrain.worker", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(base, **dataclasses.replace(env, start_note=self.start_note).to_environ()),
            pass_fds=(write_fd,),
            start_new_session=True,  # a Ctrl-C at the terminal reaches only the parent, which forwards it once
        )
        os.close(write_fd)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        streams = {
            STDOUT: io.TextIOWrapper(self.proc.stdout, encoding="utf-8", errors="replace"),
            STDERR: io.TextIOWrapper(self.proc.stderr, encoding="utf-8", errors="replace"),
        }
        # Many hosts: the others' workers log apart, in RUN/logs/process-I/ (the only files they write in the run).
        hosts = spec.config.hosts
        logs = "logs" if hosts is None or hosts.writes else f"logs/process-{hosts.index}"
        # A worker started ahead prints while another trains: its lines wait until it takes over (`assign`).
        preface = zygote.import_output if zygote is not None and forked is not None else ""
        self.output = WorkerOutput(
            streams,
            self.proc.pid,
            run_dir,
            spec.echo,
            spec.config.verbosity,
            logs,
            hold=prestarted or replays,
            preface=preface,
        )
        self.messages_in = os.fdopen(read_fd, "r", buffering=1)
        self.import_seconds: float | None = None  # how long it took to import the backend and the script
        self.ready: Ready | None = None  # what it did before taking over
        self.at_optimize: AtOptimize | None = None  # a launched script's worker waiting in study.optimize
        self.returned: Returned | None = None  # what a trial's objective returned (`segtrain.worker.optimize`)
        self.early_error: Failed | None = None  # an error it reported before it was ready
        self.took_over = False  # whether it was sent its segment

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(
        self, import_timeout: float | None = None, on_call: Callable[[TrialCall], TrialAnswer] | None = None
    ) -> bool:
        """Block until the worker has loaded everything (or waits in study.optimize); False if it died first.

        `import_timeout`: raise `TimeoutError` if the worker has not imported
        the backend and the script within that many seconds from now (a
        pre-started worker imports at the lowest priority, which a busy machine
        may starve). `on_call`: answers a trial's calls on its way to `fit`.
        """
        deadline = None if import_timeout is None else time.monotonic() + import_timeout
        while self.ready is None and self.at_optimize is None and self.returned is None:
            if deadline is not None and self.import_seconds is None:
                readable, _, _ = select.select([self.messages_in], [], [], max(0.0, deadline - time.monotonic()))
                if not readable:
                    raise TimeoutError(f"worker {self.pid} has not imported its backend in {import_timeout:.1f} s")
            message = self._next()
            if message is None:
                return False
            if isinstance(message, Imported):
                self.import_seconds = message.seconds
            elif isinstance(message, Ready):
                self.ready = message
            elif isinstance(message, AtOptimize):
                self.at_optimize = message
            elif isinstance(message, TrialCall):
                self.tell((on_call or _refuse)(message).encode())
            elif isinstance(message, Returned):
                self.returned = message
            elif isinstance(message, Failed):
                self.early_error = message
        return True

    def begin_trial(self, trial: TrialLink, show: bool) -> bool:
        """Tell a worker waiting in the script's search its trial; wait until the trial reaches `fit` (or returns).

        `show`: the trial's first worker, whose lines from its objective on are new; a later segment's worker
        runs the objective again, into its log only."""
        self.at_optimize = None
        if show:
            self.output.fresh_from_mark()
        self.tell(trial.request.encode())
        return self.wait_ready(on_call=trial.relay)

    def assign(self, assignment: Assignment) -> None:
        """Send the worker its segment: from now on it trains, its log is the segment's, its lines are shown.

        Once, but for a launched script's worker that goes on to its script's next `fit` call (`next_stage`).
        """
        self.output.assign(Path(assignment.run_dir), assignment.segment.index, show_held=not self.replays)
        self.took_over = True
        self._write(assignment.encode(), close=not (assignment.verdicts or self.launched))

    def next_stage(self, ready: Ready) -> None:
        """The worker's script called `fit` again after its stage's last segment: it waits for that stage's."""
        self.ready = ready

    def ask(self, question: Question, on_call: Callable[[TrialCall], TrialAnswer] | None = None) -> Message | None:
        """Ask the waiting worker about its script (a sweep's `Question`); its answer (`Described`, `Proposed`),
        its `Failed`, or None where it died. `on_call` answers each `TrialCall` the script's search_space makes."""
        self._write(question.encode())
        for message in self.messages():
            if isinstance(message, TrialCall):
                self._write((on_call or _refuse)(message).encode())
            elif isinstance(message, (Described, Proposed, Failed)):
                return message
        return None

    def reply(self, verdict: Verdict) -> None:
        """After an epoch, when the assignment asked for verdicts: go on, or stop the run there."""
        self._write(verdict.encode())

    def tell(self, line: str) -> None:
        """A line on the worker's stdin (`segtrain.worker.protocol`'s requests, answers and relayed messages)."""
        self._write(line)

    def next_message(self) -> Message | None:
        """Its next message; None once it has closed its end."""
        return self._next()

    def _write(self, line: str, close: bool = False) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()
            if close:
                self.proc.stdin.close()
        except (BrokenPipeError, ValueError):  # it died, or its stdin is closed: its exit says why
            pass

    def messages(self) -> Iterator[Message]:
        """Messages until the worker closes its end (it exited)."""
        while (message := self._next()) is not None:
            yield message

    def _next(self) -> Message | None:
        """The next message; None once the worker has closed its end."""
        for line in iter(self.messages_in.readline, ""):
            message = decode(line)
            if message is not None:
                return message
        return None

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signum)
            except ProcessLookupError:
                pass

    def wait(self) -> int:
        return self.proc.wait()

    def death(self) -> str:
        """How a worker that ended early ended: its own error message, or its exit status."""
        if self.early_error is not None:
            return self.early_error.message
        code = self.wait()
        return f"killed by signal {-code}" if code < 0 else f"exit code {code}"

    def last_words(self) -> str:
        """The end of what the worker printed, and where the whole of it is: for a worker that died."""
        self.output.drain()
        lines = list(self.output.tail)
        shown = "\n".join(f"  | {line}" for line in lines[-15:])
        return (f"Its last output:\n{shown}\n" if shown else "") + f"Its log: {self.output.path}"

    def close(self) -> None:
        """Stop a worker that is not needed (a pre-started one at the end of the run).

        One that never got its segment has written nothing and is killed at
        once, wherever its start-up or warm-up has got to.
        """
        unused = self.proc.poll() is None and not self.took_over
        if unused:
            self.signal(signal.SIGKILL)
            self.proc.wait()
        if self.proc.poll() is None:
            try:
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()
        self.messages_in.close()
        self.output.close(discard=unused)

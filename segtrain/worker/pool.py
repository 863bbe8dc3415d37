"""The spare worker a process keeps ready: the next segment's, or the next run's.

While a segment trains, the pool starts the worker that comes next, so that at
the boundary it only waits for the checkpoint:

* for the same run (the next segment), it loads the data and warms the model
  up while it waits;
* for a run not yet known (the next trial of a sweep), it imports the backend
  and the script, and sets the run up when its assignment names it.

A spare that cannot take over is replaced by a fresh worker, once: a long
unattended job should not stop at a boundary for it.

With `start=fork` (the default) the pool also holds the zygote its workers are
forked from (`segtrain.worker.zygote`): started with the first worker, for the
backend the run's workers use (once one has said which), replaced where that
changes, ended with the pool. Where workers cannot be forked the pool says why
once, and starts fresh interpreters.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

from segtrain import backends
from segtrain.config import Start
from segtrain.errors import EXIT_FAILED
from segtrain.worker.handle import WorkerProcess, WorkerSpec
from segtrain.worker.protocol import (
    Asked,
    Described,
    Failed,
    Message,
    Proposed,
    Question,
    Ready,
    TrialAnswer,
    TrialCall,
)
from segtrain.worker.zygote import Zygote, environment_key, forking_supported

log = logging.getLogger(__name__)


MIN_PATIENCE_SECONDS = 5.0  # the least a boundary waits for a spare's import before starting afresh


def make_private_dir(path: Path) -> None:
    """`path`, made with its parent's permissions (a compilation cache is code its workers trust: no wider)."""
    if not path.is_dir():
        path.mkdir(exist_ok=True)
        path.chmod(stat.S_IMODE(path.parent.stat().st_mode))


class WorkerPool:
    """Starts the workers of one process's runs, and keeps at most one spare."""

    def __init__(self, spec: WorkerSpec, shown: bool = True):
        """`shown`: whether its first worker shows what a launched script prints before its segment (False where
        another process shows it: a lane of `segtrain run --jobs` after the first)."""
        self.spec = spec
        self.spare: WorkerProcess | None = None
        self.first_import: float | None = None  # seconds the first worker took to import, at full priority
        self.zygote: Zygote | None = None
        self.backend: str | None = None  # the backend the run's workers use, once one has said
        self._retired: list[Zygote] = []  # replaced zygotes: each ends once its workers have
        self._told: set[str] = set()  # why workers were not forked, said once each
        self._top_shown = not shown  # whether a worker has shown a launched script's top (its first does)

    def take(self, run_dir: Path, stopping: bool = False) -> tuple[WorkerProcess, bool, bool]:
        """A worker for `run_dir`, whether it was pre-started, and whether a pre-started one was given up.

        The spare takes over if it was started for this run or for any run.
        It is given up if it died while it waited (the OOM killer picks it,
        since on a CPU it holds a second copy of the data; or its start-up
        failed: where the cause is the script's, the fresh worker fails the
        same way and says why), or if it is still importing its backend, at the
        lowest CPU priority, past twice the time the first worker took at full
        priority (on a machine whose every core other jobs keep busy, a fresh
        worker is the faster way on). `stopping`: a stop signal came; whatever
        the spare's state, it is used and told to stop.
        """
        spare, self.spare = self.spare, None
        if spare is not None and spare.run_dir not in (None, run_dir):
            spare.close()  # prepared for another run (one that ended early)
            spare = None
        if spare is None:
            return self._fresh(run_dir), False, False
        patience = None if self.first_import is None else max(MIN_PATIENCE_SECONDS, 2 * self.first_import)
        try:
            if spare.wait_ready(import_timeout=patience) or stopping:
                return spare, spare.prestarted, False
            why = f"failed before its turn ({spare.death()})"
        except TimeoutError:
            why = f"was still importing its backend at low priority after {patience:.1f} s (the machine is busy)"
        spare.close()
        log.warning("The pre-started worker (pid %d) %s; starting a fresh one.", spare.pid, why)
        return self._fresh(run_dir), False, True

    def _fresh(self, run_dir: Path) -> WorkerProcess:
        return self._start(run_dir, backend=None)

    def _start(self, run_dir: Path | None, backend: str | None, prestarted: bool = False) -> WorkerProcess:
        self.backend = backend or self.backend
        environ = dict(os.environ)
        if (cache := self.spec.compilation_cache) is not None:
            make_private_dir(cache)
            environ.update(backends.compilation_cache_environ(str(cache)))
        zygote = self._zygote(environ, self.backend)
        environ = environ if zygote is None else zygote.environ
        replays = self.spec.config.launched and self._top_shown
        worker = WorkerProcess(self.spec, run_dir, prestarted, backend, zygote, environ, replays=replays)
        self._top_shown = True
        self._tell(worker.start_note)
        return worker

    def _tell(self, why: str | None) -> None:
        if why is not None and why not in self._told:
            self._told.add(why)
            log.info("Workers start as fresh interpreters: %s.", why)

    def _zygote(self, environ: dict[str, str], backend: str | None) -> Zygote | None:
        """The zygote for workers of `environ` and `backend` (None: whichever Keras picks): the one there is,
        or a new one; None where workers are not forked."""
        if self.spec.config.start != Start.FORK:
            return None
        if (why := forking_supported()) is not None:
            self._tell(why)
            return None
        current = self.zygote
        if current is not None and not (
            current.alive() and current.key == environment_key(environ) and backend in (None, current.ready_backend())
        ):
            current.retire()
            self._retired.append(current)
            current = self.zygote = None
        if current is None:
            # a backend a worker said the run uses (a script may choose it itself), else Keras' own choice
            self.zygote = current = Zygote(environ, backend)
        return current

    def note_import(self, worker: WorkerProcess, prestarted: bool) -> None:
        """Remember how long the first worker started at full priority took to import (`take`'s patience)."""
        if not prestarted and self.first_import is None:
            self.first_import = worker.import_seconds

    def prestart(self, run_dir: Path | None, backend: str | None) -> None:
        """Start the spare: for the next segment of `run_dir`, or (None) for a run not yet known."""
        if self.spare is not None:
            self.spare.close()
        self.spare = self._start(run_dir, backend, prestarted=True)

    def spare_forked(self) -> bool:
        """Whether the spare was forked (ready in a fraction of a second), not a fresh interpreter (importing)."""
        return self.spare is not None and self.spare.start == Start.FORK

    def prepare(self, run_dir: Path) -> None:
        """Have the spare that waits for a run not yet known set up for `run_dir` now (a sweep's next trial, asked
        for while the current one trains): its data loaded, its model built and traced. It says `Ready` again when
        done, which `take` waits for; where it cannot (an accelerator may be there), it only knows its run.
        Waits for the spare's start first (a fork: a fraction of a second)."""
        spare = self.spare
        if spare is None or spare.run_dir is not None or not spare.wait_ready():
            return
        spare.run_dir, spare.ready = run_dir, None
        spare.tell(Question(Asked.PREPARE, str(run_dir)).encode())

    def ask(self, question: Question, on_call: Callable[[TrialCall], TrialAnswer] | None = None) -> Message:
        """Ask the worker that waits for the next run about its script (started now where none waits): its
        `Described` or `Proposed`, or a `Failed` that says why it could not answer (it is then given up)."""
        if self.spare is not None and self.spare.run_dir is not None:  # prepared for a run that has ended
            self.spare.close()
            self.spare = None
        if self.spare is None:
            self.spare = self._start(None, self.backend, prestarted=self.first_import is not None)
        worker = self.spare
        answer = worker.ask(question, on_call) if worker.wait_ready() else worker.early_error
        if isinstance(answer, (Described, Proposed)):
            return answer
        self.spare = None
        answer = answer or Failed(EXIT_FAILED, f"its worker (pid {worker.pid}) ended: {worker.death()}")
        worker.close()
        return answer

    def keep(self, worker: WorkerProcess) -> None:
        """Keep `worker` as the one the next segment takes: started for a run, whose epochs `segtrain run` asks it
        first, or a launched script's worker that waits in its script's next `fit` call for that stage."""
        if self.spare is not None:
            self.spare.close()
        worker.run_dir = None  # whichever run (stage) takes it
        self.spare = worker

    def next_stage(self) -> Ready | None:
        """Where a launched script's worker has trained its stage and waits in the script's next `fit` call: what
        it said there (`Ready.stage`, `Ready.fit_epochs`); None where the script ended."""
        spare = self.spare
        return spare.ready if spare is not None and spare.took_over and spare.proc.poll() is None else None

    def discard(self, run_dir: Path) -> None:
        """The run in `run_dir` is over: a spare prepared for it will not be used."""
        if self.spare is not None and self.spare.run_dir == run_dir:
            self.spare.close()
            self.spare = None

    def close(self) -> None:
        if self.spare is not None:
            self.spare.close()
            self.spare = None
        for zygote in [*self._retired, *([] if self.zygote is None else [self.zygote])]:
            zygote.close()
        self.zygote, self._retired = None, []

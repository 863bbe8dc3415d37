"""Workers without the import: the parent's side of a zygote (`segtrain.worker.zygote_main` is the other).

A fresh interpreter spends seconds importing TensorFlow or JAX before a worker
can do anything. A zygote imports the backend once and forks each worker of a
run (or of a sweep or a cross-validation), so that a worker starts in well
under a second, as `multiprocessing`'s forkserver starts its children. The
worker's pipes are the parent's, passed to the zygote as file descriptors; its
exit status comes back on a pipe of its own (`ForkedWorker`, which the parent
holds as it would hold a `subprocess.Popen`).

Forking is only done where it is safe: on Linux, from a zygote that is the
only thread of its process and has started no device runtime (no CUDA context,
no TensorFlow eager context, no XLA backend), checked before every fork. Where
it is not, or the zygote died or refused, the worker is a fresh interpreter as
with `--start spawn`, and the reason is logged once and recorded in the
segment's line of segments.jsonl (`start_note`). A zygote belongs to one
environment and backend: asked for another (a second `segtrain.fit()` in a
process that changed KERAS_BACKEND, a script that chooses its own backend), the
pool replaces it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

# The largest message on the zygote's socket: its receive buffer, sized once (a larger one per request would
# make the zygote's heap creep: 2 kB a fork with 1 MiB). A request that does not fit is started as spawn.
FORK_MESSAGE_MAX = 1 << 16


@dataclass(frozen=True)
class ForkRequest:
    """Parent -> zygote: fork a worker with this environment and these arguments (its pipes go beside, as fds)."""

    environ: dict[str, str]
    argv: list[str]

    def encode(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def decode(cls, data: bytes) -> ForkRequest:
        return cls(**json.loads(data))


# What may differ between the zygote's environment and a worker's: the worker's own variables, and what the
# backend reads only when its device runtime starts (in the worker).
_PER_WORKER = ("SEGTRAIN_WORKER", "SEGTRAIN_PROTOCOL", "PYTHONUNBUFFERED", "CUDA_VISIBLE_DEVICES")
_READY_TIMEOUT = 300.0  # seconds a zygote may take to import the backend


def forking_supported() -> str | None:
    """Why this platform cannot fork workers, or None."""
    if not sys.platform.startswith("linux"):
        return f"forking workers needs Linux (this is {sys.platform})"
    if not hasattr(socket, "send_fds"):
        return "forking workers needs socket.send_fds (Python 3.9+)"
    return None


def environment_key(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """What of an environment a zygote must share with the workers it forks."""
    return tuple(sorted((k, v) for k, v in environ.items() if k not in _PER_WORKER))


class ForkedWorker:
    """A worker the zygote forked, held as a `subprocess.Popen`: its pid, pipes, exit status."""

    def __init__(self, pid: int, stdin: IO[bytes], stdout: IO[bytes], stderr: IO[bytes], status: int):
        self.pid, self.stdin, self.stdout, self.stderr = pid, stdin, stdout, stderr
        self._status = status  # read end of the pipe the zygote writes the exit status on
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._status], [], [], 0)[0]:
            self._read_status()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._status], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
            self._read_status()
        assert self.returncode is not None
        return self.returncode

    def _read_status(self) -> None:
        data = os.read(self._status, 64)
        os.close(self._status)
        # Nothing written: the zygote died before it could reap the worker, which dies with it (PR_SET_PDEATHSIG).
        self.returncode = int(data) if data else -signal.SIGKILL


class Zygote:
    """One zygote process, for the workers of one environment; `fork` makes a worker, or says why it cannot."""

    def __init__(self, environ: Mapping[str, str], backend: str | None = None):
        """A zygote for workers of `environ` (its key: `environment_key`), importing `backend` where given."""
        self.key = environment_key(environ)
        self.environ = dict(environ, **({} if backend is None else {"KERAS_BACKEND": backend}))  # its workers'
        self._lock = threading.Lock()
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "segtrain.worker.zygote_main", str(theirs.fileno())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # what its import prints comes back in its `ready` answer (`said`)
            stderr=subprocess.DEVNULL,
            env=self.environ,
            pass_fds=(theirs.fileno(),),
            start_new_session=True,  # a Ctrl-C at the terminal reaches only segtrain, which decides
        )
        theirs.close()
        self.backend: str | None = None
        self.import_seconds: float | None = None
        self.import_output = ""  # what importing the backend printed: each worker's log begins with it, as a
        # fresh interpreter's would
        self._refused: str | None = None
        self._answered = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self) -> str | None:
        """Block until the zygote has imported the backend; why it cannot fork workers, or None."""
        with self._lock:
            if not self._answered:
                answer = self._receive(_READY_TIMEOUT)
                self._answered = True
                self.backend = answer.get("backend")
                self.import_seconds = answer.get("seconds")
                self.import_output = str(answer.get("said") or "")
                self._refused = None if answer.get("ready") else str(answer.get("refused"))
            return self._refused

    def ready_backend(self) -> str | None:
        """The backend it imported (waits for the import); None where it could not."""
        self.wait_ready()
        return self.backend

    def fork(self, environ: Mapping[str, str], argv: list[str], events: int) -> tuple[ForkedWorker | None, str | None]:
        """A worker forked with `environ` and `argv`, its messages written to the pipe end `events` (the caller
        closes it after); or None and why not (the caller starts a fresh interpreter)."""
        if (why := self.wait_ready()) is not None:
            return None, why
        if environment_key(environ) != environment_key(self.environ):
            return None, "the environment differs from the zygote's"
        request = ForkRequest(dict(environ), argv).encode()
        if len(request) > FORK_MESSAGE_MAX:
            return None, f"the worker's environment is larger than {FORK_MESSAGE_MAX} bytes"
        with self._lock:
            stdin, stdout, stderr, status = os.pipe(), os.pipe(), os.pipe(), os.pipe()  # (read, write) each
            theirs = [stdin[0], stdout[1], stderr[1], events, status[1]]  # in zygote_main.PIPES' order
            mine = [stdin[1], stdout[0], stderr[0], status[0]]
            try:
                socket.send_fds(self._sock, [request], theirs)
                answer = self._receive(30.0)
            except OSError as e:
                answer = {"refused": f"the zygote is gone ({e})"}
            for fd in theirs:
                if fd != events:
                    os.close(fd)
            if "pid" not in answer:
                for fd in mine:
                    os.close(fd)
                self._refused = str(answer.get("refused"))  # its answers may be out of step now: no more forks
                return None, self._refused
            pipes = os.fdopen(stdin[1], "wb"), os.fdopen(stdout[0], "rb"), os.fdopen(stderr[0], "rb")
            return ForkedWorker(int(answer["pid"]), *pipes, status[0]), None

    def _receive(self, timeout: float) -> dict[str, Any]:
        if not select.select([self._sock], [], [], timeout)[0]:
            return {"refused": f"the zygote did not answer in {timeout:.0f} s"}
        data = self._sock.recv(FORK_MESSAGE_MAX)
        if not data:
            code = self.proc.poll()
            return {"refused": "the zygote exited" + ("" if code is None else f" (status {code})")}
        return dict(json.loads(data))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def retire(self) -> None:
        """Fork no more: the zygote exits once the workers it forked have."""
        self._sock.close()

    def close(self) -> None:
        """End the zygote: it exits once the workers it forked have (the parent closes those first)."""
        self._sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

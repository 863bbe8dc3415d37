"""The zygote: one process that imports the backend once and forks every worker of a run (or sweep, or cv).

`python -m segtrain.worker.zygote_main FD` (started by `segtrain.worker.zygote.Zygote`, its socket's end at FD).
It imports Keras and its backend, runs no op, creates no device and starts no
thread of its own; then it waits until it is the only thread left (the
import's helpers end), checks that no backend's device runtime started, and
says `ready`. For each request (a worker's environment and its five pipe
ends, passed as file descriptors like `multiprocessing`'s forkserver passes
them) it checks again and forks; the child becomes the worker exactly as
`python -m segtrain.worker` would (`segtrain.worker.main.main`). Where a check
fails, the request is refused with the reason and the parent starts a fresh
interpreter instead.

The zygote is each worker's parent: it reaps them and writes each exit status
to that worker's status pipe, which the parent's `ForkedWorker` reads as
`Popen` reads `waitpid`. It dies with the parent (PR_SET_PDEATHSIG), and its
workers die with it, so kill -9 of the parent or the zygote leaves no orphan.
The parent closing the socket ends it once its workers have exited.

Its heap (~430,000 objects after TensorFlow's import) is left out of every
worker's garbage collection, as Python's `gc` documentation advises for a
process that forks without exec: the zygote imports with the collector off
(no collection walks the growing heap: 4.3 -> 3.5 s for TensorFlow and
segtrain's Keras side, here) and freezes what it imported (`gc.freeze`), and
each worker turns the collector on again. A worker's full collection then
walks its own objects only; without, its first one walked all of the
zygote's (0.25 s, copying every page it touched) wherever it fell, often in
the segment's first save.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import io
import json
import os
import select
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO

import setproctitle

from segtrain import backends
from segtrain.backends import devices
from segtrain.backends.distribution import split_cpu_early
from segtrain.worker import main as worker_main
from segtrain.worker.protocol import WorkerEnv
from segtrain.worker.zygote import FORK_MESSAGE_MAX, ForkRequest

SETTLE_SECONDS = 3.0  # how long the import's helper threads may take to end before the zygote gives up
SAID_MAX = 16_384  # of what the import printed, the end kept for the workers' logs (the reply fits a message)
PIPES = ("stdin", "stdout", "stderr", "events", "status")  # the file descriptors of a request, in this order


def threads() -> set[int] | None:
    """The ids of this process's threads (Linux: /proc/self/task); None where they cannot be told."""
    try:
        return {int(tid) for tid in os.listdir("/proc/self/task")}
    except OSError:
        return None


def unsafe(blas: frozenset[int] = frozenset()) -> str | None:
    """Why forking now would be unsafe, or None: another thread than `blas` (its locks would be copied held), or
    a device runtime already started (a CUDA context or XLA's backends do not survive a fork).

    `blas`: the threads there were before the backend's import: the OpenBLAS pools of NumPy and SciPy
    (segtrain's own modules start none), which OpenBLAS itself stops before a fork and starts again after it
    (its `pthread_atfork` handler). Every thread the backend's import started must have ended.
    """
    tids = threads()
    if tids is None:
        return "the zygote cannot list its threads (no /proc)"
    if others := tids - blas - {threading.get_native_id()}:
        return f"the zygote has {len(others)} thread(s) besides its own and OpenBLAS's"
    if devices.device_runtime_started():
        return "the zygote's backend started its device runtime"
    return None


def _settle(blas: frozenset[int]) -> str | None:
    """Wait for the import's helper threads to end; why forking is unsafe, or None."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while (why := unsafe(blas)) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    return why


@contextmanager
def _output_to(file: IO[str]) -> Iterator[None]:
    """File descriptors 1 and 2 to `file` for a while."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(file.fileno(), 1)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved_fd in zip((1, 2), saved, strict=True):
            os.dup2(saved_fd, fd)
            os.close(saved_fd)


def _send(sock: socket.socket, **message: object) -> None:
    sock.sendall(json.dumps(message).encode())


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG: die with the parent
    if os.getppid() == 1:
        os._exit(1)
    split_cpu_early()  # as a worker does, before anything imports JAX
    gc.disable()  # the import's objects live as long as the zygote: collecting them only slows it
    t0 = time.perf_counter()
    if importlib.util.find_spec("scipy") is not None:  # its own OpenBLAS, which Keras imports on JAX: its pool
        importlib.import_module("scipy.linalg")  # starts here, before the snapshot
    blas = frozenset(threads() or set()) - {threading.get_native_id()}  # NumPy's and SciPy's pools
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as said:
        try:
            with _output_to(said):  # the import's lines (TensorFlow's C++ logging writes to fd 2 itself)
                backend = backends.current().name  # imports Keras and the backend KERAS_BACKEND (or keras.json) names

                from segtrain.training import segment  # noqa: F401 - the worker's Keras-side code, imported once
        except Exception as e:
            _send(sock, refused=f"importing Keras failed ({type(e).__name__}: {e})")
            return
        said.seek(0)
        printed = said.read()[-SAID_MAX:]
    why = _settle(blas)
    gc.freeze()  # the workers' collections leave the zygote's objects (and their pages) alone
    _send(sock, ready=why is None, refused=why, backend=backend, seconds=time.perf_counter() - t0, said=printed)
    if why is None:
        _serve(sock, blas)


def _serve(sock: socket.socket, blas: frozenset[int]) -> None:
    """Fork a worker per request until the parent closes the socket; reap them, reporting each exit status."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wakeup fd hears of each exit
    status_of: dict[int, int] = {}  # a live worker's pid -> its status pipe's write end
    closing = False
    while not closing or status_of:
        watched: list[int] = [wake_r] if closing else [sock.fileno(), wake_r]
        readable, _, _ = select.select(watched, [], [])
        if wake_r in readable:
            os.read(wake_r, 512)
        _reap(status_of)
        if sock.fileno() in readable:
            data, fds, flags, _ = socket.recv_fds(sock, FORK_MESSAGE_MAX, len(PIPES))
            if not data:
                closing = True  # the parent is done with the zygote: end once its workers have
                continue
            request = None if flags & socket.MSG_TRUNC else ForkRequest.decode(data)
            pid = _fork(request, fds, sock, (wake_r, wake_w), blas)
            if pid is not None:  # the status pipe's end stays until the worker is reaped
                status_of[pid] = fds.pop()
            for fd in fds:
                os.close(fd)


def _reap(status_of: dict[int, int]) -> None:
    while status_of:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        fd = status_of.pop(pid, None)
        if fd is not None:
            os.write(fd, str(os.waitstatus_to_exitcode(status)).encode())
            os.close(fd)


def _fork(
    request: ForkRequest | None, fds: list[int], sock: socket.socket, own: tuple[int, int], blas: frozenset[int]
) -> int | None:
    """Fork the requested worker and tell the parent its pid; None where refused (the parent is told why).
    `request`: None where it did not fit in a message."""
    why = unsafe(blas)
    if why is None and len(fds) != len(PIPES):
        why = f"the request passed {len(fds)} file descriptors, not {len(PIPES)}"
    if why is None and request is None:
        why = f"the request was larger than {FORK_MESSAGE_MAX} bytes"
    if why is not None or request is None:
        _send(sock, refused=why)
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            _become_worker(request, fds, sock, own)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(1)  # `main` leaves through os._exit; anything else is a failure
    _send(sock, pid=pid)
    return pid


def _become_worker(request: ForkRequest, fds: list[int], sock: socket.socket, own: tuple[int, int]) -> None:
    """In the child: what `python -m segtrain.worker` would be, in its own session, with its own pipes."""
    gc.enable()  # off in the zygote, which only imports and forks
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sock.close()
    for fd in own:
        os.close(fd)
    os.setsid()
    stdin, stdout, stderr, events, status = fds
    os.close(status)
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
        os.close(fd)
    # Unbuffered, as PYTHONUNBUFFERED=1 makes a spawned worker's streams.
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8", errors="replace")
    sys.stdout = _unbuffered(1)
    sys.stderr = _unbuffered(2)
    # As `ps` and `pgrep -f` show a fresh worker: `python -m segtrain.worker RUN_DIR`, not the zygote's line
    # (before the environment changes: setproctitle moves it aside first).
    setproctitle.setproctitle(" ".join([sys.executable, "-m", "segtrain.worker", *request.argv]))
    _set_environ(WorkerEnv.forked_environ(request.environ, events, os.getppid()))
    sys.argv = ["segtrain.worker", *request.argv]
    if "numpy" in sys.modules:  # a fresh interpreter seeds NumPy's global generator afresh; so does a fork
        sys.modules["numpy"].random.seed()
    worker_main.main()


def _unbuffered(fd: int) -> io.TextIOWrapper:
    return io.TextIOWrapper(
        io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
    )


def _set_environ(environ: Mapping[str, str]) -> None:
    os.environ.clear()
    os.environ.update(environ)


if __name__ == "__main__":
    main()

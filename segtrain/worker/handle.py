"""Worker processes as seen from the supervisor: start, wait until ready, run, read events."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator


EVENT_FD_ENV = "SEGTRAIN_EVENT_FD"
PRESTARTED_ENV = "SEGTRAIN_PRESTARTED"  # "1": started ahead of its segment, so it may warm up while it waits
BACKEND_ENV = "SEGTRAIN_BACKEND"  # the Keras backend the run's previous worker used, for a pre-started one


class WorkerProcess:
    """One `python -m segtrain.worker RUN_DIR` child and its event pipe.

    The child runs in its own session, so a Ctrl-C at the terminal reaches
    only the supervisor, which forwards it once.
    """

    def __init__(self, run_dir: Path, prestarted: bool = False, backend: str | None = None):
        read_fd, write_fd = os.pipe()
        env = dict(os.environ, **{EVENT_FD_ENV: str(write_fd), "SEGTRAIN_PARENT_PID": str(os.getpid()),
                                  PRESTARTED_ENV: "1" if prestarted else "0", BACKEND_ENV: backend or ""})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "segtrain.worker", str(run_dir)],
            stdin=subprocess.PIPE, env=env, pass_fds=(write_fd,), start_new_session=True,
        )
        os.close(write_fd)
        self.events_in = os.fdopen(read_fd, "r", buffering=1)
        self.import_seconds: float | None = None  # how long it took to import the backend and the script
        self.ready: dict | None = None  # its "ready" event: what it did before taking over
        self.early_error: dict | None = None  # an error it reported before it was ready
        self.took_over = False  # whether it was sent its segment

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, import_timeout: float | None = None) -> bool:
        """Block until the worker has loaded everything; False if it died first.

        `import_timeout`: raise `TimeoutError` if the worker has not imported
        the backend and the script within that many seconds from now (a
        pre-started worker imports at the lowest priority, which a busy machine
        may starve).
        """
        deadline = None if import_timeout is None else time.monotonic() + import_timeout
        while self.ready is None:
            if deadline is not None and self.import_seconds is None:
                readable, _, _ = select.select([self.events_in], [], [], max(0.0, deadline - time.monotonic()))
                if not readable:
                    raise TimeoutError(f"worker {self.pid} has not imported its backend in {import_timeout:.1f} s")
            event = self._next_event()
            if event is None:
                return False
            if event.get("event") == "imported":
                self.import_seconds = event["seconds"]
            elif event.get("event") == "ready":
                self.ready = event
            else:
                self.early_error = event
        return True

    def send(self, command: dict) -> None:
        assert self.proc.stdin is not None
        self.took_over = True
        try:
            self.proc.stdin.write((json.dumps(command) + "\n").encode())
            self.proc.stdin.flush()
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def events(self) -> Iterator[dict]:
        """Events until the worker closes its end (it exited)."""
        while (event := self._next_event()) is not None:
            yield event

    def _next_event(self) -> dict | None:
        """The next event; None once the worker has closed its end."""
        for line in iter(self.events_in.readline, ""):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
        return None

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signum)
            except ProcessLookupError:
                pass

    def wait(self) -> int:
        return self.proc.wait()

    def close(self) -> None:
        """Stop a worker that is not needed (a pre-started one at the end of the run).

        One that never got its segment has written nothing and is killed at
        once, wherever its start-up or warm-up has got to.
        """
        if self.proc.poll() is None and not self.took_over:
            self.signal(signal.SIGKILL)
            self.proc.wait()
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()
        self.events_in.close()

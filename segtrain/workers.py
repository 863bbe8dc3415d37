"""Worker processes as seen from the supervisor: start, wait until ready, run, read events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator


EVENT_FD_ENV = "SEGTRAIN_EVENT_FD"
PRESTARTED_ENV = "SEGTRAIN_PRESTARTED"  # "1": started ahead of its segment, so it may warm up while it waits


class WorkerProcess:
    """One `python -m segtrain.worker RUN_DIR` child and its event pipe.

    The child runs in its own session, so a Ctrl-C at the terminal reaches
    only the supervisor, which forwards it once.
    """

    def __init__(self, run_dir: Path, prestarted: bool = False):
        read_fd, write_fd = os.pipe()
        env = dict(os.environ, **{EVENT_FD_ENV: str(write_fd), "SEGTRAIN_PARENT_PID": str(os.getpid()),
                                  PRESTARTED_ENV: "1" if prestarted else "0"})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "segtrain.worker", str(run_dir)],
            stdin=subprocess.PIPE, env=env, pass_fds=(write_fd,), start_new_session=True,
        )
        os.close(write_fd)
        self.events_in = os.fdopen(read_fd, "r", buffering=1)
        self.ready_at: float | None = None
        self.ready: dict | None = None  # its "ready" event: what it did before taking over
        self.early_error: dict | None = None  # an error it reported before it was ready
        self.took_over = False  # whether it was sent its segment

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self) -> bool:
        """Block until the worker has loaded everything; False if it died first."""
        if self.ready_at is not None:
            return True
        for event in self.events():
            if event.get("event") == "ready":
                self.ready_at = time.perf_counter()
                self.ready = event
                return True
            self.early_error = event
        return False

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
        for line in self.events_in:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue

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

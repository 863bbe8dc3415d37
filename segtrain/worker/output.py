"""What a worker prints: all of it to the run's logs, the user's own lines to the terminal.

A worker's stdout and stderr come to the parent through one pipe. Every line
goes to `RUN/logs/segment-NNNN.log` (one file per segment; a segment trained
again after a crash appends to it). The terminal gets what the user's code
prints, warnings and errors, but not the backend's start-up chatter (absl's
and TensorFlow's C++ log lines, which `TF_CPP_MIN_LOG_LEVEL` no longer silences
on TF 2.21): `verbose` lets everything through, `quiet` nothing. The last lines
are kept, so a worker that dies can be shown with its traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

# The backend's own start-up lines: a Google-log prefix (I1129 18:51:45.123 1234 file.cc:12], or with the
# seconds since the epoch: I0000 00:00:1795980809.976754 5177 port.cc:153]), absl's
# notice, and what TensorFlow prints about CPU instructions and CUDA when it loads.
CHATTER = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|This TensorFlow binary is optimized to use available CPU instructions)"
)
KEEP_LINES = 40  # of a worker's output, shown when it dies


class Verbosity:
    QUIET, NORMAL, VERBOSE = "quiet", "normal", "verbose"
    ALL = (QUIET, NORMAL, VERBOSE)


def shown(line: str, verbosity: str) -> bool:
    """Whether a worker's line reaches the terminal."""
    if verbosity == Verbosity.VERBOSE:
        return True
    if verbosity == Verbosity.QUIET:
        return False
    return not CHATTER.match(line)


class WorkerOutput:
    """Reads a worker's output pipe on a thread: into its log file, and the lines worth it to `echo`."""

    def __init__(
        self,
        stream: IO[str],
        pid: int,
        run_dir: Path | None,
        echo: Callable[[str], None],
        verbosity: str,
        logs: str = "logs",
    ):
        self.pid, self.echo, self.verbosity, self.logs = pid, echo, verbosity, logs
        self.tail: deque[str] = deque(maxlen=KEEP_LINES)
        self.echoing = True
        self.lock = threading.Lock()
        if run_dir is None:  # a worker for a run not yet known: its log waits in a temporary file
            fd, name = tempfile.mkstemp(prefix=f"segtrain-worker-{pid}-", suffix=".log")
            self.path = Path(name)
            self.file: IO[str] = os.fdopen(fd, "a", encoding="utf-8", errors="replace")
        else:
            self.path = logs_dir(run_dir, logs) / f"worker-{pid}.log"
            self.file = open(self.path, "a", encoding="utf-8", errors="replace")
        self._header(f"worker pid {pid} started")
        self.thread = threading.Thread(target=self._pump, args=(stream,), name=f"segtrain-output-{pid}", daemon=True)
        self.thread.start()

    def _header(self, text: str) -> None:
        self.file.write(f"--- segtrain: {text}, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self.file.flush()

    def _pump(self, stream: IO[str]) -> None:
        for line in iter(stream.readline, ""):
            with self.lock:
                self.file.write(line)
                self.file.flush()
            text = line.rstrip("\n")
            self.tail.append(text)
            if self.echoing and shown(text, self.verbosity):
                try:
                    self.echo(text)
                except (OSError, ValueError):  # the terminal went away (a closed pipe): keep draining the worker
                    self.echoing = False
        stream.close()

    def assign(self, run_dir: Path, segment: int) -> None:
        """The worker trains segment `segment` of `run_dir`: its log becomes that segment's (appended to)."""
        target = logs_dir(run_dir, self.logs) / f"segment-{segment + 1:04d}.log"
        with self.lock:
            self.file.close()
            with open(target, "a", encoding="utf-8") as out, open(self.path, encoding="utf-8") as seen:
                shutil.copyfileobj(seen, out)
            self.path.unlink(missing_ok=True)
            self.path = target
            self.file = open(target, "a", encoding="utf-8", errors="replace")
            self._header(f"worker pid {self.pid} trains segment {segment + 1}")

    def close(self, discard: bool = False) -> None:
        """After the worker exited: wait for its last lines; `discard`: it never trained, drop its log."""
        self.thread.join(timeout=5)
        with self.lock:
            self.file.close()
        if discard:
            self.path.unlink(missing_ok=True)


def logs_dir(run_dir: Path, logs: str = "logs") -> Path:
    path = Path(run_dir) / logs
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def filtered_import_output(log: Path, verbosity: str) -> Iterator[None]:
    """Keep the backend's start-up chatter off the terminal while this process imports the script itself.

    A sweep's own process imports the script (for `search_space`), and with it
    the backend, whose C++ logging writes straight to file descriptor 2. For
    that while, descriptors 1 and 2 go to `log`; then the lines worth showing
    are shown, as a worker's would be.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a", encoding="utf-8") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        start = out.tell()
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    with open(log, encoding="utf-8", errors="replace") as seen:
        seen.seek(start)
        for line in seen.read().splitlines():
            if shown(line, verbosity):
                print(line, file=sys.stderr)

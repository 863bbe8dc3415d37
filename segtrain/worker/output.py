"""What a worker prints: all of it to the run's logs, each stream to segtrain's own stream of that name.

A worker's stdout and stderr come to the parent through a pipe each, read on a
thread each. Every line of both goes to `RUN/logs/segment-NNNN.log` (one file
per segment; a segment trained again after a crash appends to it), in the order
they arrive. What the worker prints on stdout (the script's own lines) goes to
segtrain's stdout, whole, whatever the verbosity: as a launcher keeps a
script's output, `segtrain run train.py > out.txt` keeps what it prints. Its
stderr goes to segtrain's stderr, but not the backend's start-up chatter
(absl's and TensorFlow's C++ log lines, which `TF_CPP_MIN_LOG_LEVEL` no longer
silences on TF 2.21): `verbose` lets everything through, `quiet` nothing.

A worker started ahead (the spare) runs its start-up, the script's top under
`segtrain run`, while the previous segment trains: what it prints then is held
back until it takes over, so that the lines of successive segments come in
their order, and a spare that is never used shows nothing. Under `segtrain
run`, what a worker after the first prints before its segment (the script's
top again, and the stages trained already) is the log's only: the first worker
showed it, so stdout holds what `python train.py` prints, once. The last lines are
kept, so a worker that dies can be shown with its traceback.
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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from segtrain.config import Verbosity

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
# What a worker prints on both its streams where what it prints from then on is new (a search's trial begins in
# it): the lines before, on each stream, are the log's only (`WorkerOutput.fresh_from_mark`). Never shown.
FRESH = "\x1esegtrain: new output from here\x1e"
STDOUT, STDERR = "stdout", "stderr"  # a worker's streams, and segtrain's own that each goes to

#: Where a worker's line that is shown goes: `echo(line, stream)`, `stream` STDOUT or STDERR.
Echo = Callable[[str, str], None]


def mark_fresh() -> None:
    """In a worker: what it prints from here on is new (`FRESH`, on both streams)."""
    for stream in (sys.stdout, sys.stderr):
        print(FRESH, file=stream, flush=True)


def shown(line: str, verbosity: str, stream: str = STDERR) -> bool:
    """Whether a worker's line reaches segtrain's stream: stdout's always, stderr's by the verbosity."""
    if stream == STDOUT or verbosity == Verbosity.VERBOSE:
        return True
    if verbosity == Verbosity.QUIET:
        return False
    return not CHATTER.match(line)


class WorkerOutput:
    """Reads a worker's stdout and stderr on a thread each: into its log file, and the lines worth it to `echo`.

    `hold`: the worker was started ahead; its lines wait until `release` (it takes over).
    """

    def __init__(
        self,
        streams: Mapping[str, IO[str]],
        pid: int,
        run_dir: Path | None,
        echo: Echo,
        verbosity: str,
        logs: str = "logs",
        hold: bool = False,
        preface: str = "",
    ):
        """`preface`: stderr lines the worker printed before it was forked (its zygote's import), read as its own."""
        self.pid, self.echo, self.verbosity, self.logs = pid, echo, verbosity, logs
        self.tail: deque[str] = deque(maxlen=KEEP_LINES)
        self.echoing = dict.fromkeys(streams, True)  # False once segtrain's stream of that name is gone
        self.held: list[tuple[str, str]] | None = [] if hold else None
        self.assigned = False  # whether it has been assigned a segment (its log is a segment's)
        self.marks: set[str] | None = None  # `fresh_from_mark`: the streams that have printed `FRESH` so far
        self.lock = threading.Lock()
        if run_dir is None:  # a worker for a run not yet known: its log waits in a temporary file
            fd, name = tempfile.mkstemp(prefix=f"segtrain-worker-{pid}-", suffix=".log")
            self.path = Path(name)
            self.file: IO[str] = os.fdopen(fd, "a", encoding="utf-8", errors="replace")
        else:
            self.path = logs_dir(run_dir, logs) / f"worker-{pid}.log"
            self.file = open(self.path, "a", encoding="utf-8", errors="replace")
        self._header(f"worker pid {pid} started")
        for text in preface.splitlines():
            self._line(text, STDERR)
        self.threads = [
            threading.Thread(target=self._pump, args=(stream, name), name=f"segtrain-{name}-{pid}", daemon=True)
            for name, stream in streams.items()
        ]
        for thread in self.threads:
            thread.start()

    def _header(self, text: str) -> None:
        self.file.write(f"--- segtrain: {text}, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self.file.flush()

    def _pump(self, stream: IO[str], name: str) -> None:
        for line in iter(stream.readline, ""):
            with self.lock:  # one stream's line at a time, in the log as on the terminal
                self._line(line.rstrip("\n"), name)
        stream.close()

    def fresh_from_mark(self) -> None:
        """Show what the worker prints after it prints `FRESH` on a stream; what came before stays in the log.

        The streams are read on threads of their own, so what a worker printed before it got its trial may
        still be in a pipe when the parent sends the trial: the mark, in each stream, is where they part."""
        with self.lock:
            self.marks = set()
            if self.held is None:
                self.held = []

    def _marked(self, name: str) -> None:
        assert self.held is not None and self.marks is not None
        self.held = [(text, stream) for text, stream in self.held if stream != name or name in self.marks]
        self.marks.add(name)
        if self.marks >= set(self.echoing):  # both streams marked: what each said since, in order, and on
            held, self.held = self.held, None
            for text, stream in held:
                self._echo(text, stream)

    def _line(self, text: str, name: str) -> None:
        if text == FRESH and self.marks is not None and name not in self.marks:
            self._marked(name)
            return
        self.file.write(text + "\n")
        self.file.flush()
        self.tail.append(text)
        if shown(text, self.verbosity, name):
            if self.held is not None:
                self.held.append((text, name))
            else:
                self._echo(text, name)

    def _echo(self, text: str, name: str) -> None:
        if not self.echoing[name]:
            return
        try:
            self.echo(text, name)
        except (OSError, ValueError):  # segtrain's stream went away (a closed pipe): keep draining the worker
            self.echoing[name] = False

    def release(self, show_held: bool = True) -> None:
        """Show what the worker printed while it was held back (`show_held`; else it is in the log only), and from
        now on its lines as they come."""
        with self.lock:
            held, self.held = self.held or [], None
            for text, name in held if show_held else []:
                self._echo(text, name)

    def assign(self, run_dir: Path, segment: int, show_held: bool = True) -> None:
        """The worker trains segment `segment` of `run_dir`: its log becomes that segment's (appended to).

        What it wrote before its first segment moves there; a launched script's worker that trains its next
        stage's segment after this one keeps this log whole and goes on in that segment's.
        """
        target = logs_dir(run_dir, self.logs) / f"segment-{segment + 1:04d}.log"
        with self.lock:
            self.file.close()
            if not self.assigned:
                with open(target, "a", encoding="utf-8") as out, open(self.path, encoding="utf-8") as seen:
                    shutil.copyfileobj(seen, out)
                self.path.unlink(missing_ok=True)
            self.assigned = True
            self.path = target
            self.file = open(target, "a", encoding="utf-8", errors="replace")
            self._header(f"worker pid {self.pid} trains segment {segment + 1}")
        self.release(show_held)

    def drain(self, timeout: float = 5) -> None:
        """Wait (at most `timeout` seconds a stream) until the worker's streams are read to their end."""
        for thread in self.threads:
            thread.join(timeout=timeout)

    def close(self, discard: bool = False) -> None:
        """After the worker exited: wait for its last lines; `discard`: it never trained, drop its log."""
        self.drain()
        with self.lock:
            self.file.close()
        if discard:
            self.path.unlink(missing_ok=True)


def logs_dir(run_dir: Path, logs: str = "logs") -> Path:
    path = Path(run_dir) / logs
    path.mkdir(parents=True, exist_ok=True)
    return path

"""Several supervisor processes of one job at once (`sweep --jobs J`, `run --jobs J`).

Each is a whole segtrain process of its own (its workers, its signals, its
locks), as `python -m MODULE ARGS... INDEX`. Where GPUs are visible and
`CUDA_VISIBLE_DEVICES` is not set, each gets one, in turn. The stop signals
the job's command receives are forwarded to all of them, and their exit codes
gathered, as torchrun's agent does with its local workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from segtrain.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_RESUMABLE, ConfigError
from segtrain.outcomes import RunStatus


def gpus() -> list[int]:
    """The GPUs' indices, from the NVIDIA driver's device files (asking a library would start its runtime)."""
    return sorted(
        int(p.name.removeprefix("nvidia"))
        for p in Path("/dev").glob("nvidia[0-9]*")
        if p.name.removeprefix("nvidia").isdigit()
    )


def run_all(
    module: str,
    args: Sequence[str],
    count: int,
    signals: Sequence[str],
    env: Mapping[str, str] | None = None,
    stop_the_rest: bool = False,
) -> list[int]:
    """Run `python -m module *args INDEX` for INDEX in 0..count-1 until all have ended; their exit codes.

    One that a forwarded stop signal killed (it had no handler in place just then) counts as resumable (75).
    `stop_the_rest`: one that fails (neither 0 nor 75) stops the others, resumably (SIGTERM): they work
    together, and would wait for it.
    """
    visible = gpus()
    procs: list[subprocess.Popen[bytes]] = []
    forwarded: set[int] = set()

    def forward(signum: int, frame: object = None) -> None:
        forwarded.add(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    def codes() -> list[int | None]:
        found = [proc.poll() for proc in procs]
        return [EXIT_RESUMABLE if code is not None and -code in forwarded else code for code in found]

    previous = {s: signal.signal(s, forward) for s in (signal.Signals[name] for name in signals)}
    try:
        for index in range(count):
            environ = dict(os.environ, **(env or {}))
            if visible and "CUDA_VISIBLE_DEVICES" not in os.environ:
                environ["CUDA_VISIBLE_DEVICES"] = str(visible[index % len(visible)])
            procs.append(subprocess.Popen([sys.executable, "-m", module, *args, str(index)], env=environ))
            for signum in forwarded:  # a stop that came while the others started reaches this one too
                procs[-1].send_signal(signum)
        stopped = False
        while None in (now := codes()):
            if stop_the_rest and not stopped and any(c not in (None, EXIT_OK, EXIT_RESUMABLE) for c in now):
                forward(signal.SIGTERM)
                stopped = True
            time.sleep(0.1)
        return [code for code in now if code is not None]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ended(codes: Sequence[int], who: str) -> tuple[RunStatus, str] | None:
    """How processes that exited with `codes` end their job: None where all finished; FAILED where one failed
    (a ConfigError where it stopped on bad input: its own message says what to fix); else INTERRUPTED.
    `who`: one of them, in words ("a job of the sweep")."""
    if all(code == EXIT_OK for code in codes):
        return None
    if EXIT_BAD_INPUT in codes:
        raise ConfigError(f"{who} stopped on bad input (exit codes {codes}); see its message above.")
    if any(code not in (EXIT_OK, EXIT_RESUMABLE) for code in codes):
        return RunStatus.FAILED, f"exit codes {codes}; see the messages above"
    return RunStatus.INTERRUPTED, "stopped by a signal; resumable (the same command goes on)"

"""Signal policy, all in one place.

The preemption signals (SIGTERM, SIGINT, SIGUSR1 by default; configurable
because NCCL may claim SIGUSR1) never stop anything in the handler: they set a
flag that training reads at the end of each batch, where it saves and exits
with 75. A second SIGINT is the user insisting: it aborts at once, and the last
complete checkpoint stays valid because nothing is ever written in place.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

EXIT_ABORTED = 130


class StopFlag:
    """Set by a signal handler; read by training at the end of each batch."""

    def __init__(self) -> None:
        self.signal: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def signum(self) -> int | None:
        return None if self.signal is None else int(getattr(signal, self.signal))


class SignalPolicy:
    """Install handlers that set `flag`; `forward` also passes each signal on (to a worker)."""

    def __init__(
        self,
        names: tuple[str, ...],
        flag: StopFlag,
        forward: Callable[[int], None] | None = None,
        abort: Callable[[], None] | None = None,
    ):
        self.signums = [getattr(signal, n) for n in names]
        self.flag = flag
        self.forward = forward
        self.abort = abort
        self.previous: dict[int, Any] = {}

    def handle(self, signum: int, frame: object = None) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGINT and self.flag.requested:
            if self.abort is not None:
                self.abort()
            os._exit(EXIT_ABORTED)
        if not self.flag.requested:
            self.flag.signal = name
        if self.forward is not None:
            self.forward(signum)

    def install(self) -> SignalPolicy:
        for signum in self.signums:
            self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def uninstall(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()

    def __enter__(self) -> SignalPolicy:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

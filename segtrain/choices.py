"""The closed sets of a run's options, each an enum its field holds (`segtrain.config.RunConfig`).

A leaf module, as `segtrain.options` is: the worker's protocol and every layer may import it.
"""

from __future__ import annotations

from segtrain.options import Choice


class Isolation(Choice):
    """Where each segment trains: a fresh worker process, or this process after `clear_session()`."""

    PROCESS = "process"
    SESSION = "session"


class Start(Choice):
    """How a worker process begins: forked from a zygote that imported the backend once, or a fresh interpreter."""

    FORK = "fork"
    SPAWN = "spawn"


class Format(Choice):
    """The checkpoint format (one class each in `segtrain.state.formats`, registered in its `CHECKPOINT_FORMATS`)."""

    KERAS = "keras"
    H5 = "h5"
    SAVEDMODEL = "savedmodel"


class Verbosity(Choice):
    """What reaches the terminal (`-q`, `-v`); a worker's whole output is in `RUN/logs/` in any case."""

    QUIET = "quiet"
    NORMAL = "normal"
    VERBOSE = "verbose"

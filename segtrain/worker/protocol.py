"""The parent<->worker protocol: every message and environment variable, as dataclasses both sides import.

A worker is `python -m segtrain.worker RUN_DIR`. The parent passes a `WorkerEnv`
in the environment and, once the worker is ready, one `Assignment` on its
stdin; the worker sends messages back as JSON lines on a pipe, in this order:

    Imported -> Ready -> EpochEnded* -> Finished | Failed

(`Failed` may come at any point; a worker stopped by a signal before its
assignment sends nothing more.) Each message is `{"message": KIND, ...fields}`
on one line.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any, ClassVar

from segtrain.training.records import Segment, SegmentResult


@dataclass(frozen=True)
class WorkerEnv:
    """What the parent tells a worker through its environment."""

    event_fd: int  # the write end of the pipe the worker sends its messages on
    parent_pid: int  # the worker dies with this process (PR_SET_PDEATHSIG) and exits if it is gone already
    prestarted: bool = False  # started ahead of its segment: it may import and warm up while it waits
    backend: str | None = None  # the Keras backend the run's previous worker ran, imported ahead at low priority

    _NAMES: ClassVar[dict[str, str]] = {
        "event_fd": "SEGTRAIN_EVENT_FD",
        "parent_pid": "SEGTRAIN_PARENT_PID",
        "prestarted": "SEGTRAIN_PRESTARTED",
        "backend": "SEGTRAIN_BACKEND",
    }

    def to_environ(self) -> dict[str, str]:
        return {
            self._NAMES["event_fd"]: str(self.event_fd),
            self._NAMES["parent_pid"]: str(self.parent_pid),
            self._NAMES["prestarted"]: "1" if self.prestarted else "0",
            self._NAMES["backend"]: self.backend or "",
        }

    @classmethod
    def from_environ(cls, environ: dict[str, str] | os._Environ[str] = os.environ) -> WorkerEnv:
        names = cls._NAMES
        return cls(
            event_fd=int(environ[names["event_fd"]]),
            parent_pid=int(environ.get(names["parent_pid"]) or os.getppid()),
            prestarted=environ.get(names["prestarted"]) == "1",
            backend=environ.get(names["backend"]) or None,
        )


@dataclass(frozen=True)
class CheckpointRef:
    """The checkpoint a segment starts from, by name.

    `committed_here`: the parent saw this run's own worker commit it, so its
    sizes are checked instead of re-reading every byte (a run that starts or
    resumes checks every checksum).
    """

    name: str
    committed_here: bool = False


@dataclass(frozen=True)
class Assignment:
    """Parent -> worker, on stdin: the segment to train, and what to start from (None: a new model)."""

    segment: Segment
    checkpoint: CheckpointRef | None
    start_seconds: float  # what starting the worker cost, the first estimate of a boundary's cost

    def encode(self) -> str:
        return json.dumps(dataclasses.asdict(self)) + "\n"

    @classmethod
    def decode(cls, line: str) -> Assignment:
        data = json.loads(line)
        ref = data["checkpoint"]
        return cls(Segment(**data["segment"]), None if ref is None else CheckpointRef(**ref), data["start_seconds"])


# -- worker -> parent ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    """The worker has imported the backend and the script."""

    seconds: float
    KIND: ClassVar[str] = "imported"


@dataclass(frozen=True)
class Ready:
    """The worker has done all it does before its assignment: it only waits for it now."""

    pid: int
    backend: str
    data_deferred: bool  # load_data() waits for the take-over (an accelerator may be present)
    device_runtime_started: bool  # whether it touched a device before taking over (it must not)
    warm_up_seconds: float | None  # building and tracing the model ahead; None where not done or it failed
    KIND: ClassVar[str] = "ready"


@dataclass(frozen=True)
class EpochEnded:
    """An epoch ended: `record` is its line of epochs.jsonl (already written by the worker)."""

    record: dict[str, Any]
    KIND: ClassVar[str] = "epoch"


@dataclass(frozen=True)
class Finished:
    """The segment ended (at its boundary, the run's end, an early stop, a signal or a NaN loss)."""

    result: SegmentResult
    KIND: ClassVar[str] = "result"


@dataclass(frozen=True)
class Failed:
    """The worker could not go on; `exit_code` is the one the run ends with (2: the script's fault)."""

    exit_code: int
    message: str
    traceback: str | None = None
    KIND: ClassVar[str] = "error"


Message = Imported | Ready | EpochEnded | Finished | Failed
_KINDS: dict[str, type] = {cls.KIND: cls for cls in (Imported, Ready, EpochEnded, Finished, Failed)}


def encode(message: Message) -> str:
    """One line of JSON: the message's kind and its fields."""
    fields = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}
    if isinstance(message, Finished):
        fields["result"] = message.result.to_json()
    return json.dumps({"message": message.KIND, **fields}) + "\n"


def decode(line: str) -> Message | None:
    """The message on `line`; None for a line that is not one (a torn write, stray output)."""
    try:
        data = json.loads(line)
        cls = _KINDS[data.pop("message")]
        if cls is Finished:
            return Finished(SegmentResult(**data["result"]))
        return cls(**data)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None

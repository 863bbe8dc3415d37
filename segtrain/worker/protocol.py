"""The parent<->worker protocol: every message and environment variable, as dataclasses both sides import.

A worker is `python -m segtrain.worker`. The parent passes a `WorkerEnv` in
the environment and, once the worker is ready, one `Assignment` on its stdin;
the worker sends messages back as JSON lines on a pipe, in this order:

    Imported -> Ready -> EpochEnded* -> Finished | Failed

(`Failed` may come at any point; a worker stopped by a signal before its
assignment sends nothing more.) Each message is `{"kind": KIND, ...fields}`
on one line (`kind`: a key no message has as a field). Where the assignment asks for verdicts, the worker waits after
each `EpochEnded` for a `Verdict` on its stdin: go on, or stop there (a sweep's
pruner decides so).

A worker knows its script from the start, and may know its run: then it loads
the data and warms the model up before it is ready. A launched script's worker
(`segtrain run`) runs the script up to its `model.fit` call before it is ready,
and says what `epochs` that call asked for. One started for a run not
yet known (the next trial of a sweep) only imports, and sets the run up when
its assignment names it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from segtrain.backends.hosts import Hosts
from segtrain.training.records import Segment, SegmentResult

# The wire format's version: a worker started from other code than its parent's (segtrain upgraded while a
# run trains) says so and exits, instead of speaking a format the parent would not understand.
PROTOCOL = 5


@dataclass(frozen=True)
class WorkerEnv:
    """What the parent tells a worker through its environment."""

    event_fd: int  # the write end of the pipe the worker sends its messages on
    parent_pid: int  # the worker dies with this process (PR_SET_PDEATHSIG) and exits if it is gone already
    script: str  # the training script it imports
    run_dir: str | None = None  # the run it prepares for; None: named by its assignment
    signals: tuple[str, ...] = ()  # the signals that stop it resumably
    debug: bool = False
    prestarted: bool = False  # started ahead of its segment: it may import and warm up while it waits
    backend: str | None = None  # the Keras backend the previous worker ran, imported ahead at low priority
    verbosity: str = "normal"  # quiet, normal or verbose: the worker's logging level follows it
    launched: bool = False  # `segtrain run`: run the script from the top; its `model.fit` trains the segment
    seed: int | None = None  # a launched script's seed, set before it runs
    script_args: tuple[str, ...] = ()  # a launched script's sys.argv[1:]
    module: str | None = None  # the script is this module, imported by name (`script` is its file)
    functions: tuple[tuple[str, str], ...] = ()  # the script's functions by reference (`training.references`)
    hosts: Hosts | None = None  # many hosts: it joins the others' workers at its assignment
    protocol: int = PROTOCOL

    _PREFIX: ClassVar[str] = "SEGTRAIN_"

    def to_environ(self) -> dict[str, str]:
        values = {
            "event_fd": str(self.event_fd),
            "parent_pid": str(self.parent_pid),
            "script": self.script,
            "run_dir": self.run_dir or "",
            "signals": ",".join(self.signals),
            "debug": "1" if self.debug else "0",
            "prestarted": "1" if self.prestarted else "0",
            "backend": self.backend or "",
            "verbosity": self.verbosity,
            "launched": "1" if self.launched else "0",
            "seed": "" if self.seed is None else str(self.seed),
            "script_args": json.dumps(list(self.script_args)),
            "module": self.module or "",
            "functions": json.dumps(dict(self.functions)),
            "hosts": "" if self.hosts is None else self.hosts.to_text(),
            "protocol": str(self.protocol),
        }
        return {self._PREFIX + name.upper(): value for name, value in values.items()}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> WorkerEnv:
        def get(name: str) -> str:
            return environ.get(cls._PREFIX + name.upper(), "")

        return cls(
            event_fd=int(get("event_fd")),
            parent_pid=int(get("parent_pid") or os.getppid()),
            script=get("script"),
            run_dir=get("run_dir") or None,
            signals=tuple(s for s in get("signals").split(",") if s),
            debug=get("debug") == "1",
            prestarted=get("prestarted") == "1",
            backend=get("backend") or None,
            verbosity=get("verbosity") or "normal",
            launched=get("launched") == "1",
            seed=int(get("seed")) if get("seed") else None,
            script_args=tuple(json.loads(get("script_args") or "[]")),
            module=get("module") or None,
            functions=tuple(sorted(json.loads(get("functions") or "{}").items())),
            hosts=Hosts.from_text(get("hosts")),
            protocol=int(get("protocol") or 0),
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
    """Parent -> worker, on stdin: the run and segment to train, and what to start from (None: a new model)."""

    run_dir: str
    segment: Segment
    checkpoint: CheckpointRef | None
    start_seconds: float  # what starting the worker cost, the first estimate of a boundary's cost
    verdicts: bool = False  # wait for a `Verdict` after each epoch
    # Many hosts: a stop signal the parent got before the segment; the worker still joins, to stop the others too.
    stop: str | None = None

    def encode(self) -> str:
        return json.dumps(dataclasses.asdict(self)) + "\n"

    @classmethod
    def decode(cls, line: str) -> Assignment:
        data = json.loads(line)
        ref = data["checkpoint"]
        return cls(
            data["run_dir"],
            Segment(**data["segment"]),
            None if ref is None else CheckpointRef(**ref),
            data["start_seconds"],
            data.get("verdicts", False),
            data.get("stop"),
        )


@dataclass(frozen=True)
class Verdict:
    """Parent -> worker, after an epoch when the assignment asks for verdicts: go on, or stop the run there."""

    stop_reason: str | None = None  # None: go on

    def encode(self) -> str:
        return json.dumps(dataclasses.asdict(self)) + "\n"

    @classmethod
    def decode(cls, line: str) -> Verdict:
        return cls(**json.loads(line)) if line.strip() else cls()


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
    fit_epochs: int | None = None  # a launched script's `model.fit(epochs=...)`, where it got there before its turn
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
_KIND_KEY = "kind"
_KINDS: dict[str, type] = {cls.KIND: cls for cls in (Imported, Ready, EpochEnded, Finished, Failed)}


def encode(message: Message) -> str:
    """One line of JSON: the message's kind and its fields."""
    fields = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}
    if isinstance(message, Finished):
        fields["result"] = message.result.to_json()
    return json.dumps({**fields, _KIND_KEY: message.KIND}) + "\n"


def decode(line: str) -> Message | None:
    """The message on `line`; None for a line that is not one (a torn write, stray output)."""
    try:
        data = json.loads(line)
        cls = _KINDS[data.pop(_KIND_KEY)]
        if cls is Finished:
            return Finished(SegmentResult(**data["result"]))
        return cls(**data)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None

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
and says what `epochs` that call asked for. Where the script goes on to call
`fit` again after its stage's last segment (`Finished`), the worker says
`Ready` again for that next stage and waits for its next assignment on the
same stdin. One started for a run not
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

from segtrain.config import RunConfig, Start
from segtrain.options import Choice
from segtrain.training.records import Segment, SegmentResult

# The wire format's version: a worker started from other code than its parent's (segtrain upgraded while a
# run trains) says so and exits, instead of speaking a format the parent would not understand. 6: the
# environment is one JSON variable with the run's options whole (`WorkerEnv`). 7: workers forked by a zygote
# (`WorkerEnv.zygote_backend`, `Ready.start`). 8: a launched script's stages (`Ready.stage`, a second assignment).
# 9: a launched search's lanes (`Drive.lane`, `TrialCall.call`). 10: a spare set up for a run asked for ahead
# (`Asked.PREPARE`, `Question.run_dir`).
PROTOCOL = 10
_PREFIX = "SEGTRAIN_"
_PROTOCOL_VARIABLE = _PREFIX + "PROTOCOL"  # read before anything else, whatever the version: never renamed
_VARIABLE = _PREFIX + "WORKER"


@dataclass(frozen=True)
class WorkerEnv:
    """What the parent tells a worker through its environment: the run's options whole, and this worker's own.

    `config` is the `RunConfig` of the worker's runs (its script resolved), all its fields, `hosts` too (many
    hosts: the worker joins the others' workers at its assignment): the script, its module and functions, the
    stop signals, debug, verbosity (the worker's logging level follows it), a launched script's seed and args.
    """

    event_fd: int  # the write end of the pipe the worker sends its messages on
    parent_pid: int  # the worker dies with this process (PR_SET_PDEATHSIG) and exits if it is gone already
    config: RunConfig
    run_dir: str | None = None  # the run it prepares for; None: named by its assignment
    prestarted: bool = False  # started ahead of its segment: it may import and warm up while it waits
    backend: str | None = None  # the Keras backend the previous worker ran, imported ahead at low priority
    zygote_backend: str | None = None  # forked by a zygote that imported this backend; None: a fresh interpreter
    start_note: str | None = None  # a fresh interpreter where a fork was asked for: why
    protocol: int = PROTOCOL

    def to_environ(self) -> dict[str, str]:
        """Two variables: the protocol, and everything else as one JSON object."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "protocol"}
        values["config"] = self.config.to_json(saved=False)
        return {_PROTOCOL_VARIABLE: str(self.protocol), _VARIABLE: json.dumps(values)}

    @staticmethod
    def protocol_of(environ: Mapping[str, str] = os.environ) -> int:
        """The parent's protocol, readable by a worker of any version (0: none given)."""
        return int(environ.get(_PROTOCOL_VARIABLE) or 0)

    @staticmethod
    def forked_environ(environ: Mapping[str, str], event_fd: int, parent_pid: int) -> dict[str, str]:
        """`environ` for a forked worker: its events pipe's end as the zygote received it, the zygote its parent."""
        values = json.loads(environ[_VARIABLE])
        values.update(event_fd=event_fd, parent_pid=parent_pid)
        return {**environ, _VARIABLE: json.dumps(values)}

    def respawned_environ(self, environ: Mapping[str, str], note: str) -> dict[str, str]:
        """`environ` for this forked worker made again as a fresh interpreter (`os.execv`), saying why."""
        values = json.loads(environ[_VARIABLE])
        values.update(zygote_backend=None, start_note=note)
        return {**environ, _VARIABLE: json.dumps(values)}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> WorkerEnv:
        values = json.loads(environ[_VARIABLE])
        values["config"] = RunConfig.from_json(values["config"])
        values["parent_pid"] = values.get("parent_pid") or os.getppid()
        return cls(**values, protocol=cls.protocol_of(environ))


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


class Asked(Choice):
    """What a sweep's parent may ask a worker that waits for its assignment: its script runs in the worker, where
    the framework is already imported, so that the sweep's own process imports none."""

    DESCRIBE = "describe"  # does the script define search_space(trial)? its `grid`, for Optuna's GridSampler
    PROPOSE = "propose"  # run search_space(trial) with a trial whose every call the parent answers (`TrialCall`)
    PREPARE = "prepare"  # set up for the run in `Question.run_dir` (a trial asked ahead): answered by `Ready`


@dataclass(frozen=True)
class Question:
    """Parent -> worker, on stdin before its assignment: answered by `Described`, `Proposed` or `Ready`."""

    asked: Asked
    run_dir: str | None = None  # PREPARE's run

    def encode(self) -> str:
        return json.dumps({"question": str(self.asked), "run_dir": self.run_dir}) + "\n"


@dataclass(frozen=True)
class TrialAnswer:
    """Parent -> worker: what the study's trial returned for a `TrialCall` (JSON), or the error it raised."""

    value: Any = None
    error: str | None = None
    KIND: ClassVar[str] = "trial_answer"  # as a message: the driver's answer, relayed to a trial's worker

    def encode(self) -> str:
        return json.dumps(dataclasses.asdict(self)) + "\n"

    @classmethod
    def decode(cls, line: str) -> TrialAnswer:
        data = json.loads(line)
        data.pop("kind", None)
        return cls(**data)


@dataclass(frozen=True)
class Drive:
    """Parent -> a worker at `AtOptimize`: run the script's `study.optimize` here, each trial in workers of its own.

    `lane` of `lanes`: with `segtrain run --jobs J`, J processes drive one search together, each its share of the
    trials (`runs.lanes`); `invocation`: this command's, told apart from the trials an earlier one began.
    """

    lane: int = 0
    lanes: int = 1
    invocation: str = ""

    def encode(self) -> str:
        return json.dumps({"drive": dataclasses.asdict(self)}) + "\n"


@dataclass(frozen=True)
class RunTrial:
    """Parent -> a worker at `AtOptimize`: call the objective for trial `number` of search call `call` (an earlier
    call returns at once, its trials told already); its `fit` calls are `run_dir`'s."""

    number: int
    run_dir: str
    call: int = 1

    def encode(self) -> str:
        return json.dumps({"run_trial": dataclasses.asdict(self)}) + "\n"


Request = Assignment | Question | Drive | RunTrial
_RELAYED = ("trial_call", "returned")  # a trial worker's message, relayed to the driver's stdin as it is


def decode_request(line: str) -> Request | TrialCall | Returned:
    """A line on a waiting worker's stdin: its assignment, a question before it, or what a launched search sends."""
    data = json.loads(line)
    if "question" in data:
        return Question(Asked(data["question"]), data.get("run_dir"))
    if "drive" in data:
        return Drive(**data["drive"])
    if "run_trial" in data:
        return RunTrial(**data["run_trial"])
    if data.get(_KIND_KEY) in _RELAYED:
        message = decode(line)
        assert isinstance(message, (TrialCall, Returned))
        return message
    return Assignment.decode(line)


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
    stage: int = 1  # which of a launched script's `fit` calls that is (1-based: its stage of the run)
    start: Start = Start.SPAWN  # how it began: forked by the zygote, or a fresh interpreter
    start_note: str | None = None  # a fresh interpreter where a fork was asked for: why
    KIND: ClassVar[str] = "ready"

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", Start(self.start))


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


@dataclass(frozen=True)
class Described:
    """Answers `Asked.DESCRIBE`: whether the script defines `search_space(trial)`, and its `grid` (or None)."""

    search_space: bool
    grid: dict[str, Any] | None = None
    KIND: ClassVar[str] = "described"


@dataclass(frozen=True)
class TrialCall:
    """While answering `Asked.PROPOSE`: the script's search_space called `trial.<name>(*args, **kwargs)`, or read
    `trial.<name>` (`get`); the parent answers with a `TrialAnswer` on stdin."""

    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    get: bool = False
    KIND: ClassVar[str] = "trial_call"


@dataclass(frozen=True)
class Proposed:
    """Answers `Asked.PROPOSE`: the params search_space(trial) returned, or the error it raised, or (`not_a_dict`)
    the type of what it returned instead of a dict."""

    params: dict[str, Any] | None = None
    error: str | None = None
    not_a_dict: str | None = None
    KIND: ClassVar[str] = "proposed"


@dataclass(frozen=True)
class AtOptimize:
    """A launched script reached its `study.optimize(...)` call number `call`; its worker waits for a `Drive` or a
    `RunTrial` on stdin (`segtrain.worker.optimize`)."""

    call: int
    KIND: ClassVar[str] = "optimize"


@dataclass(frozen=True)
class TrialRequest:
    """The driver asks for the study's trial `number` to run in workers of its own; the parent relays each of their
    `TrialCall`s to the driver's stdin, then their `Returned`. `call`: the script's search call it belongs to (its
    `AtOptimize.call`): a second study numbers its trials from 0 again."""

    number: int
    call: int = 1
    KIND: ClassVar[str] = "trial_request"


@dataclass(frozen=True)
class Returned:
    """A trial's objective returned `values`, or raised: `pruned` (optuna.TrialPruned), else `error` (its text) and
    `exception` (it pickled, base64: what the driver raises, so that study.optimize's `catch` sees its type)."""

    values: list[float] | None = None
    pruned: bool = False
    error: str | None = None
    exception: str | None = None
    results: list[Any] | None = None  # a KerasTuner trial's: each execution's history (`worker.kerastuner`)
    KIND: ClassVar[str] = "returned"


Message = (
    Imported | Ready | EpochEnded | Finished | Failed | Described | TrialCall | Proposed | AtOptimize | TrialRequest
    | Returned | TrialAnswer
)  # fmt: skip
_KIND_KEY = "kind"
_KINDS: dict[str, type] = {
    cls.KIND: cls
    for cls in (
        *(Imported, Ready, EpochEnded, Finished, Failed, Described, TrialCall, Proposed),
        *(AtOptimize, TrialRequest, Returned, TrialAnswer),
    )
}


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

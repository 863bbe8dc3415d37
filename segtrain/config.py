"""The options of a run, checked once, in one dataclass.

Everything the CLI accepts is a field here, so that `segtrain.fit(...)` and
`segtrain fit ...` share one validation and one set of defaults.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from segtrain.backends.distribution import Distribute
from segtrain.backends.hosts import Hosts
from segtrain.errors import ConfigError


class Isolation(str, Enum):
    """Where each segment trains: a fresh worker process, or this process after `clear_session()`."""

    PROCESS = "process"
    SESSION = "session"


class Format(str, Enum):
    """The checkpoint format (one class each in `segtrain.state.formats`)."""

    KERAS = "keras"
    H5 = "h5"
    SAVEDMODEL = "savedmodel"


FORMATS = tuple(f.value for f in Format)
ISOLATIONS = tuple(i.value for i in Isolation)
DISTRIBUTIONS = tuple(d.value for d in Distribute)
DEFAULT_ROOT = Path("checkpoints")
DEFAULT_SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1")
VERBOSITIES = ("quiet", "normal", "verbose")

# Options that change what a run computes: a resumed run must use the same.
# Others may change on resume; so may --segment, since where boundaries fall
# does not change the result; `epochs` may grow (a run is extended).
IDENTITY_FIELDS = ("seed", "format", "save_every", "params", "fold", "script_args", "functions", "fit_kwargs")
# `segtrain run`: the epochs are the script's own `model.fit(epochs=...)`, learned from its first worker.
EPOCHS_FROM_SCRIPT = 0


@dataclass
class RunConfig:
    """Options of one segmented training run.

    Args:
        script: path of the training script (see `segtrain.script`).
        epochs: total number of epochs of the run.
        segment: epochs per segment; at each boundary the model is saved, the
            session cleared (or the process replaced) and the model reloaded.
            `"auto"` places boundaries where measurement says they pay off
            (see `segtrain.boundaries`).
        run_dir: directory of the run. Defaults to `checkpoints/<script stem>`.
        seed: seed for Python, NumPy and the backend, the data order and every
            layer's RNG. With a seed, a segmented run equals an unsegmented one
            bit for bit. Defaults to `None` (not reproducible).
        isolation: `"process"` (a fresh interpreter per segment, the default:
            it frees everything TensorFlow leaks) or `"session"` (save, clear
            the Keras session, collect, reload, in one process).
        format: checkpoint format: `"keras"`, `"h5"` (`.weights.h5` with the
            optimizer; the model is rebuilt by `build_model()`) or
            `"savedmodel"` (`tf.train.Checkpoint`, TensorFlow only).
        save_every: also checkpoint every this many epochs inside a segment, so
            that a crash loses at most that many. Defaults to `None` (only at
            segment boundaries).
        keep: how many complete checkpoints to keep. Defaults to 2.
        export: write the final model here after training: a `.keras` file, or
            a TF SavedModel directory for serving (any other path).
        prestart: in process isolation, start the next segment's worker while
            the current one trains. Defaults to `True`.
        force: start the run over if the run directory holds a run of another
            script or other options.
        signals: names of the signals that stop training resumably.
        max_memory: end a segment early once memory (device memory where
            measured, else RSS) exceeds this many MB. Defaults to `None`.
        debug: show tracebacks for errors caused by the script.
        params: hyperparameters passed to the script's functions that take an
            argument (`build_model(params)`, ...). Part of the run's identity.
        verbosity: what reaches the terminal: `"quiet"` (errors only), `"normal"`
            (the progress bar, what the script prints, warnings; not the
            backend's start-up chatter) or `"verbose"` (everything). Workers'
            whole output is in `RUN/logs/` in any case.
        fold: cross-validation (`segtrain cv`): `{"index", "count", "seed"}` of
            the fold this run trains (see `segtrain.training.data.Fold`).
        launched: the script is an ordinary training script that `segtrain run`
            runs from the top in every worker; its `model.fit(...)` call trains
            the worker's segment (see `segtrain.training.launched`). `epochs`
            may then be `EPOCHS_FROM_SCRIPT` until its first worker reaches `fit`.
        script_args: the command-line arguments of a launched script
            (`sys.argv[1:]`). Part of the run's identity.
        tensorboard: write segtrain's telemetry as TensorBoard scalars to this
            folder's `segtrain/` run; `"auto"`: `RUN_DIR/tensorboard` (see
            `segtrain.telemetry.scalars`). Defaults to `None` (none written).
        hosts: this process's place among the processes (one per host) that
            train the run together under `distribute="data-parallel"` on JAX
            (see `segtrain.backends.hosts`); process 0 writes the run. Not part of
            the run: it is not saved, and each resume gives its own. Defaults to
            `None` (one host).
        continue_stopped: train on a run that a callback stopped early (EarlyStopping), to
            `epochs`; its callbacks see a new `fit` call, as in one process that calls `fit`
            again (EarlyStopping's patience starts afresh). A request of this call, not the
            run's: never saved. Defaults to `False` (a stopped run stays stopped).
    """

    script: Path
    epochs: int
    segment: int | str
    run_dir: Path | None = None
    seed: int | None = None
    isolation: str = "process"
    format: str = "keras"
    save_every: int | None = None
    keep: int = 2
    export: Path | None = None
    prestart: bool = True
    force: bool = False
    signals: tuple[str, ...] = DEFAULT_SIGNALS
    max_memory: float | None = None
    debug: bool = False
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    fold: dict[str, int] | None = None
    verbosity: str = "normal"
    launched: bool = False
    script_args: list[str] = dataclasses.field(default_factory=list)
    distribute: str = "none"
    module: str | None = None
    functions: dict[str, str] = dataclasses.field(default_factory=dict)
    fit_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    tensorboard: str | None = None
    hosts: Hosts | None = None
    continue_stopped: bool = False

    def __post_init__(self) -> None:
        self.script = Path(self.script)
        if self.run_dir is None:
            self.run_dir = DEFAULT_ROOT / self.script.stem
        self.run_dir = Path(self.run_dir)
        if self.export is not None:
            self.export = Path(self.export)
        self.signals = tuple(self.signals)
        self.script_args = [str(a) for a in self.script_args]
        self.validate()

    @property
    def directory(self) -> Path:
        """The run directory: `run_dir`, or its default, `checkpoints/<script stem>`."""
        return self.run_dir if self.run_dir is not None else DEFAULT_ROOT / self.script.stem

    def validate(self) -> None:
        if not (self.launched and self.epochs == EPOCHS_FROM_SCRIPT):
            _positive("epochs", self.epochs)
        if self.distribute not in DISTRIBUTIONS:
            raise ConfigError(
                f"--distribute must be one of {', '.join(DISTRIBUTIONS)}. Received: distribute={self.distribute!r}"
            )
        if self.launched and self.distribute != "none":
            raise ConfigError(
                "`segtrain run` trains the model the script builds, outside any distribution: use --distribute with "
                "`segtrain fit`, or a strategy in the script itself."
            )
        one_host = self.distribute != Distribute.DATA_PARALLEL or self.isolation != Isolation.PROCESS
        if self.hosts is not None and one_host:
            raise ConfigError(
                f"Many hosts ({self.hosts.count} processes, from {self.hosts.source}) train with --distribute "
                "data-parallel and --isolation process (each segment's workers join JAX's runtime afresh)."
            )
        if self.launched and self.isolation != Isolation.PROCESS:
            raise ConfigError(
                "`segtrain run` runs the script in a fresh worker per segment: isolation must be process."
            )
        if self.segment != "auto":
            _positive("segment", self.segment, "or 'auto'")
        if self.max_memory is not None and (not isinstance(self.max_memory, (int, float)) or self.max_memory <= 0):
            raise ConfigError(f"--max-memory must be a positive number of MB. Received: max_memory={self.max_memory!r}")
        if self.save_every is not None:
            _positive("save_every", self.save_every)
        _positive("keep", self.keep)
        if self.seed is not None and not isinstance(self.seed, int):
            raise ConfigError(f"--seed must be an integer. Received: seed={self.seed!r}")
        if self.isolation not in ISOLATIONS:
            raise ConfigError(
                f"--isolation must be one of {', '.join(ISOLATIONS)}. Received: isolation={self.isolation!r}"
            )
        if self.format not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}. Received: format={self.format!r}")
        if self.tensorboard is not None and (not isinstance(self.tensorboard, str) or not self.tensorboard.strip()):
            raise ConfigError(
                f"--tensorboard takes a folder, or 'auto' for RUN_DIR/tensorboard. Received: {self.tensorboard!r}"
            )
        if self.tensorboard not in (None, "auto") and Path(self.tensorboard).expanduser().is_file():
            raise ConfigError(f"--tensorboard {self.tensorboard} is a file: give a folder (it is created if missing).")
        if self.verbosity not in VERBOSITIES:
            raise ConfigError(f"verbosity must be one of {', '.join(VERBOSITIES)}. Received: {self.verbosity!r}")
        if self.directory.exists() and not self.directory.is_dir():
            raise ConfigError(f"--run-dir {self.directory} is a file: give a directory (it is created if missing).")
        if not isinstance(self.params, dict) or not all(isinstance(k, str) for k in self.params):
            raise ConfigError(f"params must be a dict of name -> value. Received: params={self.params!r}")
        for name in ("params", "fit_kwargs"):
            try:
                json.dumps(getattr(self, name))
            except (TypeError, ValueError) as e:
                raise ConfigError(f"{name} must be JSON values (numbers, strings, lists, dicts): {e}") from None
        if self.functions and not {"build_model", "load_data"} <= set(self.functions):
            raise ConfigError("Give both build_model= and load_data= (functions defined at the top level of a module).")
        for name in self.signals:
            if not isinstance(getattr(signal, name, None), signal.Signals):
                raise ConfigError(
                    f"--signals: unknown signal name {name!r}; use names such as SIGTERM,SIGUSR1. Received: "
                    f"signals={','.join(self.signals)!r}"
                )

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("script", "run_dir", "export"):
            data[key] = None if data[key] is None else str(data[key])
        data["signals"] = list(self.signals)
        del data["hosts"]  # this process's, not the run's: never saved
        del data["continue_stopped"]  # this call's request, not the run's
        return data

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The default value of every field that has one."""
        found: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                found[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                found[f.name] = f.default_factory()
        return found

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _positive(name: str, value: Any, alternative: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        flag = "--" + name.replace("_", "-")
        also = f" {alternative}" if alternative else ""
        raise ConfigError(f"{flag} must be a positive integer{also}. Received: {name}={value!r}")

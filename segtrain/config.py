"""The options of a run, each a field with its flag and help (`segtrain.options.option`), checked once.

`segtrain.fit(...)` and `segtrain fit ...` share one declaration, one validation and one set of defaults."""

from __future__ import annotations

import dataclasses
import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segtrain.backends.distribution import Distribute
from segtrain.backends.hosts import DEFAULT_TIMEOUT_SECONDS, Hosts, hosts_for
from segtrain.choices import Format, Isolation, Start, Verbosity
from segtrain.errors import ConfigError
from segtrain.options import (
    AUTO,
    EVERY,
    NEW_RUNS,
    Command,
    defaults,
    flag_of,
    member,
    option,
    parse_params,
    positive,
    segment_length,
    signal_names,
)

FIT, RUN, RESUME, SWEEP, CV = Command.FIT, Command.RUN, Command.RESUME, Command.SWEEP, Command.CV


DEFAULT_ROOT = Path("checkpoints")
DEFAULT_SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1")

# Options that change what a run computes: a resumed run must use the same.
# Others may change on resume; so may --segment, since where boundaries fall
# does not change the result; `epochs` may grow (a run is extended).
IDENTITY_FIELDS = ("seed", "format", "save_every", "params", "fold", "script_args", "functions", "fit_kwargs")
# `segtrain run`: the epochs are the script's own `model.fit(epochs=...)`, learned from its first worker.
EPOCHS_FROM_SCRIPT = 0


@dataclass
class RunConfig:
    """Options of one segmented training run: each field is an option, its flag and help beside it.

    Beyond the help texts: `isolation="process"` frees everything TensorFlow leaks; `format="h5"` and
    `"savedmodel"` store no architecture (`build_model()` rebuilds it); `params` and `script_args` are part of the
    run's identity (`IDENTITY_FIELDS`); fields whose flag says `saved=False` (`hosts`, `progress`,
    `continue_stopped`, the many-hosts options) belong to this process or call, not to the run, and are never
    saved. The others:

    Args:
        script: path of the training script (see `segtrain.training.script`).
        fold: cross-validation: `{"index", "count", "seed"}` of the fold it trains (`training.data.Fold`).
        launched: `segtrain run`: the script runs from the top in every worker; its `model.fit(...)` call
            trains the segment (`segtrain.training.launched`); `epochs` is `EPOCHS_FROM_SCRIPT` until known.
        part_of: a launched script's later stage, or a trial of its study.optimize: the run directory of the
            run it belongs to, which alone goes on with it (`segtrain.runs.launch`).
        module, functions, fit_kwargs: the script as a module, its functions, their `fit` arguments.
        hosts: this process's place among those (one per host) that train the run together on JAX
            (`with_hosts`, `segtrain.backends.hosts`); process 0 writes the run.
    """

    script: Path
    epochs: int = option(
        "--epochs",
        "-e",
        help="Total number of epochs (of each trial or fold).",
        commands=frozenset({FIT, RESUME, SWEEP, CV}),
        on_resume=True,
        variants={RESUME: {"help": "Train the run to this many epochs in all: extends a finished run.", "shown": None}},
    )
    segment: int | str = option(
        "--segment",
        "-s",
        help="Epochs per segment (save, clear, reload between), "
        "or 'auto': a boundary wherever the time lost to slowdown exceeds a boundary's cost.",
        commands=NEW_RUNS,
        cli=str,
        parse=segment_length,
        on_resume=True,
        variants={
            RUN: {
                "shown": AUTO,
                "help": "Epochs per segment, or 'auto': a boundary wherever the time lost to slowdown exceeds a "
                "boundary's cost.",
            }
        },
    )
    run_dir: Path | None = option(
        "--run-dir",
        default=None,
        help="Run directory [default: checkpoints/<script name>].",
        commands=frozenset({FIT, RUN}),
    )
    seed: int | None = option(
        "--seed",
        default=None,
        help="Seed everything: segmented training then equals unsegmented bit for bit.",
        commands=NEW_RUNS,
        variants={
            SWEEP: {
                "help": "Every trial trains with this seed (trials differ only by their params), and the sampler is "
                "seeded too."
            }
        },
    )
    isolation: Isolation = option(
        "--isolation",
        default=Isolation.PROCESS,
        help="process: a fresh interpreter per segment; session: clear the Keras session in one process.",
        commands=frozenset({FIT, SWEEP, CV}),
        on_resume=True,
    )
    distribute: Distribute = option(
        "--distribute",
        default=Distribute.NONE,
        help="data-parallel: train each segment over every local device (TensorFlow's MirroredStrategy, Keras' "
        "DataParallel on JAX); the batch size is the global batch. SEGTRAIN_CPU_DEVICES=N splits the CPU into N "
        "devices.",
        commands=frozenset({FIT, RESUME, SWEEP}),
        on_resume=True,
        variants={
            RESUME: {"help": "none or data-parallel, as in `fit` [default: as the run was started].", "shown": None}
        },
    )
    coordinator: str | None = option(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help="With --distribute data-parallel: train on many hosts, one process each; HOST:PORT reaches process 0 "
        "[default: from KERAS_DISTRIBUTION_* or Slurm's srun].",
        commands=frozenset({FIT, RESUME}),
        saved=False,
    )
    num_processes: int | None = option(
        "--num-processes",
        default=None,
        help="How many processes (hosts) train the run.",
        commands=frozenset({FIT, RESUME}),
        saved=False,
    )
    process_id: int | None = option(
        "--process-id",
        default=None,
        help="This process's id, 0 to N-1; process 0 writes the run.",
        commands=frozenset({FIT, RESUME}),
        saved=False,
    )
    peer_timeout: int = option(
        "--peer-timeout",
        default=DEFAULT_TIMEOUT_SECONDS,
        help="Seconds to wait for the other processes to join each segment, or for a lost one's heartbeat; then "
        "exit 75.",
        commands=frozenset({FIT, RESUME}),
        saved=False,
    )
    format: Format = option(
        "--format",
        default=Format.KERAS,
        help="Checkpoint format: keras, h5 (.weights.h5 with optimizer) or savedmodel (tf.train.Checkpoint).",
        commands=NEW_RUNS,
    )
    save_every: int | None = option(
        "--save-every", default=None, help="Also checkpoint every K epochs inside a segment.", commands=NEW_RUNS
    )
    keep: int = option("--keep", default=2, help="Complete checkpoints to keep.", commands=NEW_RUNS, on_resume=True)
    export: Path | None = option(
        "--export",
        default=None,
        help="Write the final model here: a .keras file, or a SavedModel directory.",
        commands=frozenset({FIT, RUN}),
        on_resume=True,
    )
    start: Start = option(
        "--start",
        default=Start.FORK,
        help="How each worker begins: fork (from a process that imported the backend once; spawn where that is "
        "not safe, saying why) or spawn (a fresh interpreter, importing it again).",
        commands=NEW_RUNS,
        on_resume=True,
    )
    prestart: bool = option(
        "--prestart/--no-prestart",
        default=True,
        help="Start the next worker while a segment trains.",
        commands=NEW_RUNS,
        on_resume=True,
    )
    jobs: int = option(
        "--jobs",
        "-j",
        default=1,
        help="A search script's trials (study.optimize) at once, each in its own workers (one GPU each where GPUs "
        "are visible and CUDA_VISIBLE_DEVICES is not set).",
        commands=frozenset({RUN}),
        saved=False,
    )
    force: bool = option(
        "--force",
        default=False,
        help="Start over if RUN_DIR holds a run of another script or options.",
        commands=frozenset({FIT, RUN}),
        variants={RUN: {"help": "Start over if RUN_DIR holds a run of another script or arguments."}},
    )
    signals: tuple[str, ...] = option(
        "--signals",
        default=DEFAULT_SIGNALS,
        help="Signals that stop training resumably (exit 75).",
        commands=NEW_RUNS,
        cli=str,
        parse=signal_names,
        shown=",".join(DEFAULT_SIGNALS),
        on_resume=True,
    )
    max_memory: float | None = option(
        "--max-memory",
        default=None,
        help="End a segment early once memory (device memory on a GPU, else RSS) exceeds this many MB.",
        commands=NEW_RUNS,
        on_resume=True,
    )
    params: dict[str, Any] = option(
        "--param",
        "-p",
        factory=dict,
        help="A hyperparameter NAME=VALUE for the script's build_model(params) and load_data(params) "
        "(repeatable; VALUE is parsed as JSON, else kept as a string).",
        commands=frozenset({FIT, CV}),
        cli=list[str],
        parse=parse_params,
        shown=[],
        variants={CV: {"before": "seed"}},
    )
    # A value is required: an option whose value may be left out would take the SCRIPT or RUN_DIR that follows it.
    tensorboard: str | None = option(
        "--tensorboard",
        default=None,
        metavar="DIR|auto",
        help="Write segtrain's telemetry (seconds per epoch, slowdown, memory, each boundary's cost) as TensorBoard "
        "scalars to DIR/segtrain, beside the script's own TensorBoard logs; 'auto': RUN_DIR/tensorboard.",
        commands=EVERY,
        on_resume=True,
        variants={
            RESUME: {
                "metavar": "DIR|auto|off",
                "help": "TensorBoard scalars as in `fit` (they go on where they left off); 'off': write no more "
                "[default: as the run was started].",
            }
        },
    )
    continue_stopped: bool = option(
        "--continue",
        default=False,
        help="Train on a run that a callback (EarlyStopping) stopped early, as a new fit() call would: "
        "patience starts afresh. Without it, a stopped run stays stopped.",
        commands=frozenset({RESUME}),
        per_call=True,
        saved=False,
    )
    progress: bool = option(
        "--progress/--no-progress",
        default=True,
        help="Show the progress bar.",
        commands=EVERY,
        per_call=True,
        saved=False,
    )
    verbosity: Verbosity = option(default=Verbosity.NORMAL, commands=EVERY, per_call=True)  # the CLI's -v and -q
    debug: bool = option(
        "--debug", default=False, help="Show tracebacks for errors in the script.", commands=EVERY, per_call=True
    )
    fold: dict[str, int] | None = None
    launched: bool = False
    part_of: str | None = None
    script_args: list[str] = option(factory=list, commands=frozenset({RUN}))  # the CLI's ARGS after --
    module: str | None = None
    functions: dict[str, str] = dataclasses.field(default_factory=dict)
    fit_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    hosts: Hosts | None = option(default=None, saved=False)

    def __post_init__(self) -> None:
        self.script = Path(self.script)
        if self.run_dir is None:
            self.run_dir = DEFAULT_ROOT / self.script.stem
        self.run_dir = Path(self.run_dir)
        if self.export is not None:
            self.export = Path(self.export)
        self.signals = tuple(self.signals)
        self.script_args = [str(a) for a in self.script_args]
        self.isolation = member(Isolation, self.isolation, "--isolation", "isolation")
        self.format = member(Format, self.format, "--format", "format")
        self.distribute = member(Distribute, self.distribute, "--distribute", "distribute")
        self.verbosity = member(Verbosity, self.verbosity, "verbosity", "")
        self.validate()

    @property
    def shows_progress(self) -> bool:
        """Whether a progress bar is shown: asked for, and not `--quiet`."""
        return self.progress and self.verbosity != Verbosity.QUIET

    def with_hosts(self) -> RunConfig:
        """This config with this process's `Hosts` (many hosts on JAX) from its options, Keras' variables or srun."""
        hosts = hosts_for(self.distribute, self.coordinator, self.num_processes, self.process_id, self.peer_timeout)
        return self if hosts is None else dataclasses.replace(self, hosts=hosts)

    @property
    def directory(self) -> Path:
        """The run directory: `run_dir`, or its default, `checkpoints/<script stem>`."""
        return self.run_dir if self.run_dir is not None else DEFAULT_ROOT / self.script.stem

    def validate(self) -> None:
        if not (self.launched and self.epochs == EPOCHS_FROM_SCRIPT):
            positive("epochs", self.epochs)
        if self.launched and self.distribute != Distribute.NONE:
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
        if self.segment != AUTO:
            positive("segment", self.segment, "or 'auto'")
        if self.max_memory is not None and (not isinstance(self.max_memory, (int, float)) or self.max_memory <= 0):
            raise ConfigError(f"--max-memory must be a positive number of MB. Received: max_memory={self.max_memory!r}")
        if self.save_every is not None:
            positive("save_every", self.save_every)
        positive("keep", self.keep)
        positive("jobs", self.jobs)
        if self.seed is not None and not isinstance(self.seed, int):
            raise ConfigError(f"--seed must be an integer. Received: seed={self.seed!r}")
        if self.tensorboard is not None and (not isinstance(self.tensorboard, str) or not self.tensorboard.strip()):
            raise ConfigError(
                f"--tensorboard takes a folder, or 'auto' for RUN_DIR/tensorboard. Received: {self.tensorboard!r}"
            )
        if self.tensorboard not in (None, AUTO) and Path(self.tensorboard).expanduser().is_file():
            raise ConfigError(f"--tensorboard {self.tensorboard} is a file: give a folder (it is created if missing).")
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

    def to_json(self, saved: bool = True) -> dict[str, Any]:
        """The options as JSON values: those the run's manifest keeps, or (`saved=False`, for a worker) all."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if flag_of(f).saved or not saved}
        for key in ("script", "run_dir", "export"):
            data[key] = None if data[key] is None else str(data[key])
        data["signals"] = list(self.signals)
        return dict(json.loads(json.dumps(data, default=dataclasses.asdict)))  # enums as values, hosts as a dict

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The default value of every field that has one."""
        return defaults(cls)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if isinstance(values.get("hosts"), dict):
            values["hosts"] = Hosts(**values["hosts"])
        return cls(**values)

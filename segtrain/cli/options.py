"""Options that several commands share, declared once, and the parsing of their values."""

from __future__ import annotations

import json
import logging
from typing import Any

import typer

from segtrain.backends.distribution import Distribute
from segtrain.backends.hosts import DEFAULT_TIMEOUT_SECONDS
from segtrain.config import DEFAULT_SIGNALS, Format, Isolation
from segtrain.errors import ConfigError

EPOCHS = typer.Option(..., "--epochs", "-e", help="Total number of epochs (of each trial or fold).")
SEGMENT = typer.Option(
    ...,
    "--segment",
    "-s",
    help="Epochs per segment (save, clear, reload between), "
    "or 'auto': a boundary wherever the time lost to slowdown exceeds a boundary's cost.",
)
SEED = typer.Option(None, "--seed", help="Seed everything: segmented training then equals unsegmented bit for bit.")
ISOLATION = typer.Option(
    Isolation.PROCESS,
    "--isolation",
    help="process: a fresh interpreter per segment; session: clear the Keras session in one process.",
)
FORMAT = typer.Option(
    Format.KERAS,
    "--format",
    help="Checkpoint format: keras, h5 (.weights.h5 with optimizer) or savedmodel (tf.train.Checkpoint).",
)
DISTRIBUTE = typer.Option(
    Distribute.NONE.value,
    "--distribute",
    help="data-parallel: train each segment over every local device (TensorFlow's MirroredStrategy, Keras' "
    "DataParallel on JAX); the batch size is the global batch. SEGTRAIN_CPU_DEVICES=N splits the CPU into N devices.",
)
COORDINATOR = typer.Option(
    None,
    "--coordinator",
    metavar="HOST:PORT",
    help="With --distribute data-parallel: train on many hosts, one process each; HOST:PORT reaches process 0 "
    "[default: from KERAS_DISTRIBUTION_* or Slurm's srun].",
)
NUM_PROCESSES = typer.Option(None, "--num-processes", help="How many processes (hosts) train the run.")
PROCESS_ID = typer.Option(None, "--process-id", help="This process's id, 0 to N-1; process 0 writes the run.")
PEER_TIMEOUT = typer.Option(
    DEFAULT_TIMEOUT_SECONDS,
    "--peer-timeout",
    help="Seconds to wait for the other processes to join each segment, or for a lost one's heartbeat; then exit 75.",
)
SAVE_EVERY = typer.Option(None, "--save-every", help="Also checkpoint every K epochs inside a segment.")
KEEP = typer.Option(2, "--keep", help="Complete checkpoints to keep.")
PRESTART = typer.Option(True, "--prestart/--no-prestart", help="Start the next worker while a segment trains.")
SIGNALS = typer.Option(",".join(DEFAULT_SIGNALS), "--signals", help="Signals that stop training resumably (exit 75).")
MAX_MEMORY = typer.Option(
    None,
    "--max-memory",
    help="End a segment early once memory (device memory on a GPU, else RSS) exceeds this many MB.",
)
PARAM = typer.Option(
    [],
    "--param",
    "-p",
    help="A hyperparameter NAME=VALUE for the script's build_model(params) and load_data(params) "
    "(repeatable; VALUE is parsed as JSON, else kept as a string).",
)
# A value is required: an option whose value may be left out would take the SCRIPT or RUN_DIR that follows it.
TENSORBOARD = typer.Option(
    None,
    "--tensorboard",
    metavar="DIR|auto",
    help="Write segtrain's telemetry (seconds per epoch, slowdown, memory, each boundary's cost) as TensorBoard "
    "scalars to DIR/segtrain, beside the script's own TensorBoard logs; 'auto': RUN_DIR/tensorboard.",
)
PROGRESS = typer.Option(True, "--progress/--no-progress", help="Show the progress bar.")
VERBOSE = typer.Option(
    False,
    "--verbose",
    "-v",
    help="Show everything workers print, the backend's start-up lines too (they are in RUN/logs/ in any case).",
)
QUIET = typer.Option(
    False,
    "--quiet",
    "-q",
    help="Show only errors: no progress bar, no warnings, no worker's stderr (the script's stdout stays).",
)
DEBUG = typer.Option(False, "--debug", help="Show tracebacks for errors in the script.")


def verbosity(verbose: bool, quiet: bool) -> str:
    """`-v`/`-q` as a verbosity; `--quiet` also keeps segtrain's own warnings off the terminal."""
    if verbose and quiet:
        raise ConfigError("--verbose and --quiet contradict each other: give one.")
    if quiet:
        logging.getLogger("segtrain").setLevel(logging.ERROR)
    return "verbose" if verbose else "quiet" if quiet else "normal"


def segment_length(text: str) -> int | str:
    """`--segment`: a number of epochs or `auto` (RunConfig says what is wrong with anything else)."""
    text = text.strip().lower()
    try:
        return int(text)
    except ValueError:
        return text


def signal_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip().upper() for n in text.split(",") if n.strip())
    return tuple(n if n.startswith("SIG") else "SIG" + n for n in names)


def parse_params(items: list[str]) -> dict[str, Any]:
    """`--param NAME=VALUE` options as a dict: VALUE parsed as JSON (`3`, `0.1`, `true`, `[1, 2]`), else a string."""
    params: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(
                f"--param takes NAME=VALUE, such as --param units=64 or --param act=relu. Received: {item!r}"
            )
        try:
            params[name.strip()] = json.loads(text)
        except ValueError:
            params[name.strip()] = text
    return params

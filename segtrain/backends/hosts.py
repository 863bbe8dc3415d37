"""Many hosts: one segtrain process per host, trained together on JAX's distributed runtime.

Each host runs the same `segtrain fit ... --distribute data-parallel`; its
place among them (`Hosts`) comes from `--coordinator HOST:PORT
--num-processes N --process-id I`, from Keras' `KERAS_DISTRIBUTION_*`
variables, or from Slurm's `srun` (`SLURM_*`), in that order. Every segment's
workers join the runtime afresh (process 0's worker serves the coordinator at
HOST:PORT) and leave it when they exit, so nothing of it outlives a segment.

Process 0 alone writes the run's files; the others read them, so the run
directory must be on storage every host sees. `Peers` is what the training
side asks of the others: the same few integers from everyone, at the same
point of training (a stop signal, a boundary), and a barrier after each
checkpoint. One process alone (`ALONE`) answers itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

from segtrain.backends.distribution import Distribute
from segtrain.errors import ConfigError

DEFAULT_TIMEOUT_SECONDS = 300  # how long a process waits for the others (joining, a lost heartbeat), as JAX's default
KERAS_ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID")


@dataclass(frozen=True)
class Hosts:
    """This process's place among the processes that train one run together."""

    coordinator: str  # HOST:PORT, where process 0's worker serves JAX's coordination service each segment
    count: int
    index: int
    timeout: int = DEFAULT_TIMEOUT_SECONDS  # seconds to wait for the others to join, or for a lost one's heartbeat
    source: str = "flags"  # where they came from: flags, keras or slurm (for messages)

    def __post_init__(self) -> None:
        host, _, port = self.coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--coordinator must be HOST:PORT (from {self.source}). Received: {self.coordinator!r}")
        if self.count < 2:
            raise ConfigError(f"--num-processes must be 2 or more for many hosts. Received: {self.count}")
        if not 0 <= self.index < self.count:
            raise ConfigError(f"--process-id must be in [0, {self.count}). Received: {self.index} (from {self.source})")
        if self.timeout < 1:
            raise ConfigError(f"--peer-timeout must be a positive number of seconds. Received: {self.timeout}")

    @property
    def writes(self) -> bool:
        """Process 0 writes the run's checkpoints and records; the others only read them."""
        return self.index == 0

    def to_text(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_text(cls, text: str) -> Hosts | None:
        return cls(**json.loads(text)) if text else None


def hosts_for(
    distribute: str,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    timeout: int = DEFAULT_TIMEOUT_SECONDS,
    environ: Mapping[str, str] = os.environ,
) -> Hosts | None:
    """This process's `Hosts` under `distribute`; None: one host.

    Only data-parallel looks for them: the three options, else Keras' variables, else Slurm's `srun`.
    """
    given = [coordinator, num_processes, process_id]
    if distribute != Distribute.DATA_PARALLEL:
        if any(v is not None for v in given):
            raise ConfigError(
                "--coordinator, --num-processes and --process-id train one run on many hosts: add --distribute "
                "data-parallel."
            )
        return None
    if any(v is not None for v in given):
        if any(v is None for v in given):
            raise ConfigError(
                "Many hosts need all three of --coordinator HOST:PORT, --num-processes N and --process-id I "
                "(the same coordinator and count on every host, its own id on each)."
            )
        return Hosts(str(coordinator), int(num_processes or 0), int(process_id or 0), timeout)
    if any(name in environ for name in KERAS_ENV):
        return _from_keras(environ, timeout)
    if "SLURM_STEP_NUM_TASKS" in environ and int(environ.get("SLURM_STEP_NUM_TASKS") or 1) > 1:
        return _from_slurm(environ, timeout)
    return None


def _from_keras(environ: Mapping[str, str], timeout: int) -> Hosts:
    missing = [name for name in KERAS_ENV if not environ.get(name, "").strip()]
    if missing:
        raise ConfigError(f"Keras' distribution variables are set in part: {', '.join(missing)} missing.")
    addresses, count, index = (environ[name].strip() for name in KERAS_ENV)
    if not count.isdigit() or not index.isdigit():
        raise ConfigError(
            f"KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID must be integers. Received: "
            f"{count!r}, {index!r}"
        )
    return Hosts(addresses.split(",")[0].strip(), int(count), int(index), timeout, "keras")


def _from_slurm(environ: Mapping[str, str], timeout: int) -> Hosts:
    """As JAX's own Slurm detection: the step's first node, a port from the job id; one task per process."""
    try:
        nodes, job, count, index = (
            environ[n] for n in ("SLURM_STEP_NODELIST", "SLURM_JOB_ID", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID")
        )
        port = int(job) % 2**12 + (65535 - 2**12 + 1)
        return Hosts(f"{first_node(nodes)}:{port}", int(count), int(index), timeout, "slurm")
    except (KeyError, ValueError) as e:
        raise ConfigError(
            f"Inside `srun`, but Slurm's variables do not say where this task is ({e}); "
            "give --coordinator, --num-processes and --process-id."
        ) from None


def first_node(nodelist: str) -> str:
    """The first host of a Slurm node list: `gpu[07-09,12],cpu1` -> `gpu07`."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if match is None:
        raise ValueError(f"unreadable node list {nodelist!r}")
    prefix, ranges = match.groups()
    return prefix if ranges is None else prefix + re.split(r"[-,]", ranges)[0]


class Peers(Protocol):
    """The processes of one run, as the training side sees them (JAX's runtime, or this process alone)."""

    @property
    def index(self) -> int:
        """This process's place, 0 to count - 1."""

    @property
    def count(self) -> int:
        """How many processes train the run."""

    @property
    def timeout(self) -> int:
        """Seconds to wait for what another process does (`Hosts.timeout`)."""

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (process 0)."""

    def gather(self, values: Sequence[int]) -> list[list[int]]:
        """Every process's `values`, by process index; every process calls it at the same point."""

    def barrier(self) -> None:
        """Wait until every process has got here."""

    def alone(self) -> AbstractContextManager[None]:
        """Where process 0 works by itself (writing a checkpoint): outside the run's distribution, where every new
        variable (Keras' saving makes some) would be a collective that the others never join."""

    def leave(self) -> None:
        """After the segment: leave the others together (each process's exit would end the others' runtime)."""


@dataclass(frozen=True)
class Alone:
    """One process: the others' answers are its own."""

    index: int = 0
    count: int = 1
    timeout: int = 0

    @property
    def writes(self) -> bool:
        return True

    def gather(self, values: Sequence[int]) -> list[list[int]]:
        return [list(values)]

    def barrier(self) -> None:
        pass

    def alone(self) -> AbstractContextManager[None]:
        return nullcontext()

    def leave(self) -> None:
        pass


ALONE = Alone()

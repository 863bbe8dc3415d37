"""Training with the run's other processes (many hosts): what process 0 decided, the others take.

Every process's parent plans its segments alike, but only process 0 sees its
own checkpoints the moment they are committed; another host may see a
directory listing a moment late. So at each segment's start the others take
process 0's segment and starting checkpoint, and wait (up to the peers'
timeout) until that checkpoint is complete where they are. A stop signal that
reached any process before the segment stops them all there.
"""

from __future__ import annotations

import signal
import time

from segtrain.backends.hosts import Peers
from segtrain.errors import CheckpointError
from segtrain.paths import RunPaths
from segtrain.state import checkpoint
from segtrain.training.records import Segment
from segtrain.training.signals import StopFlag

_NONE = -1  # no checkpoint: a new model


def start_together(
    peers: Peers, paths: RunPaths, segment: Segment, start: checkpoint.Checkpoint | None, stop: StopFlag
) -> tuple[Segment, checkpoint.Checkpoint | None]:
    """The segment and the checkpoint process 0 starts from, for every process (one collective).

    A stop signal that any process got before the segment (while it joined, or its parent's between
    segments) is set in every process's `stop`: they all stop before training, nothing to save.
    """
    where = [_NONE, 0, 0] if start is None else [start.epoch, start.batch, int(start.final)]
    rows = peers.gather([segment.index, segment.start_epoch, segment.end_epoch, *where, stop.signum or 0])
    signum = next((row[-1] for row in rows if row[-1]), 0)
    if signum and not stop.requested:
        stop.signal = signal.Signals(signum).name
    first = rows[0]
    if peers.writes:
        return segment, start
    agreed = Segment(*first[:3])
    if first[3] == _NONE:
        return agreed, None
    name = paths.checkpoint(first[3], first[4], bool(first[5])).name
    return agreed, wait_for_checkpoint(paths, name, peers.timeout)


def wait_for_checkpoint(paths: RunPaths, name: str, timeout: float) -> checkpoint.Checkpoint:
    """Checkpoint `name`, once it is complete here: process 0 committed it, this host may see it late."""
    deadline = time.monotonic() + timeout
    while True:
        ok, why = checkpoint.is_complete(paths.root / name)
        if ok:
            return checkpoint.Checkpoint.read(paths.root / name)
        if time.monotonic() > deadline:
            raise CheckpointError(
                f"Process 0 trains on from checkpoint {name}, but this host does not see it complete in "
                f"{paths.root} after {timeout:.0f} s ({why}). The run directory must be on storage that every "
                "host sees (the same path on each)."
            )
        time.sleep(0.2)

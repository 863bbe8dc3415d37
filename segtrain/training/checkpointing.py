"""When a segment checkpoints, and what goes into a checkpoint besides the model."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from segtrain.backends.hosts import ALONE, Peers
from segtrain.outcomes import SegmentOutcome
from segtrain.paths import RunPaths
from segtrain.state import callback_state, checkpoint, model_state
from segtrain.state.checkpoint_state import CheckpointState
from segtrain.training.records import Segment, SegmentResult


@dataclass
class SegmentProgress:
    """What a segment has done so far: segtrain's callback writes it as epochs end, the segment reads it."""

    result: SegmentResult
    history: dict[str, list[float]] = field(default_factory=dict)  # the whole run's, carried in checkpoints
    rss_samples: list[float] = field(default_factory=list)
    trained_a_batch: bool = False
    global_rng: dict[str, str] | None = None  # the backend's global generator after the newest batch that ends an epoch

    @property
    def stopped(self) -> bool:
        """Whether a callback or a NaN loss ended the run (not a boundary, not a signal)."""
        return self.result.outcome in (SegmentOutcome.STOPPED, SegmentOutcome.NAN)


@dataclass
class Checkpointer:
    """Writes the segment's checkpoints: the model in the run's format, and the state no format keeps.

    With many hosts, process 0 writes and every process waits for it at a
    barrier: none goes on (or exits) before the checkpoint is committed.
    """

    paths: RunPaths
    format: str
    keep: int
    save_every: int | None
    epochs_total: int
    segment: Segment
    steps_per_epoch: int
    progress: SegmentProgress
    model: Any
    callbacks: list
    peers: Peers = ALONE

    def due(self, epochs_done: int) -> bool:
        """Whether a checkpoint falls after `epochs_done` epochs (the final one is written after `fit`)."""
        if epochs_done >= self.epochs_total:
            return False
        if epochs_done == self.segment.end_epoch:
            return True
        return self.save_every is not None and epochs_done % self.save_every == 0

    def save(self, epoch: int, batch: int, final: bool = False, metrics: list | None = None) -> None:
        """Checkpoint after `epoch` epochs and `batch` batches of the next, commit it, prune old ones."""
        t0 = time.perf_counter()
        result = self.progress.result
        if self.peers.writes:
            with self.peers.alone():
                result.checkpoint = self._write(epoch, batch, final, metrics)
        else:
            result.checkpoint = self.paths.checkpoint(epoch, batch, final).name  # what process 0 writes
        self.peers.barrier()
        result.save_seconds += time.perf_counter() - t0

    def _write(self, epoch: int, batch: int, final: bool, metrics: list | None) -> str:
        result = self.progress.result
        cb_states, arrays = callback_state.capture(self.callbacks)
        state = CheckpointState(
            format=self.format,
            epoch=epoch,
            batch=batch,
            final=final,
            fingerprint=model_state.fingerprint(self.model),
            rng=model_state.seed_states(self.model),
            global_rng=self.progress.global_rng or model_state.global_rng_state(),
            callbacks=cb_states,
            history=self.progress.history,
            steps_per_epoch=self.steps_per_epoch,
            segment=self.segment.index,
            outcome=result.outcome if final else None,
            stop_reason=result.stop_reason,
            pruned=result.pruned,
            metrics=metrics,
            created=time.time(),
        )
        snap = checkpoint.Snapshot(epoch=epoch, batch=batch, final=final, state=state, arrays=arrays)
        ckpt = checkpoint.save(self.model, self.paths, self.format, snap)
        checkpoint.prune(self.paths, self.keep, ckpt)
        return ckpt.path.name

"""segtrain's own Keras callback: telemetry, checkpoints, boundaries and preemption inside `fit`.

It is the last callback in the list, so at each epoch's end it sees the state
the user's callbacks left (EarlyStopping's decision included) before it saves.
Everything it reads or writes is handed to it: the segment's plan, its
`SegmentProgress`, the `Checkpointer`, the boundary policy and the stop flag.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from segtrain.backends.hosts import ALONE, Peers
from segtrain.errors import Preempted
from segtrain.outcomes import SegmentOutcome
from segtrain.state import callback_state, model_state
from segtrain.state.atomic import append_line
from segtrain.telemetry.probes import epoch_record
from segtrain.training.boundaries import BoundaryPolicy
from segtrain.training.checkpointing import Checkpointer, SegmentProgress
from segtrain.training.records import OnEpoch
from segtrain.training.signals import StopFlag

log = logging.getLogger(__name__)


@dataclass
class Restored:
    """State from the checkpoint that `fit` would reset, set back once it has."""

    callback_states: list[dict[str, Any]] | None
    callback_arrays: dict[str, Any]
    metric_states: list | None  # running metric means, for a resume in the middle of an epoch
    global_rng: dict[str, str] | None = None  # the backend's global generator (`model_state.global_rng_state`)


@dataclass(frozen=True)
class FitCall:
    """One `fit` call of a segment: epochs [first, last), starting `start_batch` batches into `first`.

    `shift`: Keras' index of the run's epoch 0 (the script's `fit(initial_epoch=...)`): Keras, and the
    callbacks, count epochs from there; the run, its records and checkpoints from 0.
    """

    first: int
    last: int
    start_batch: int = 0
    shift: int = 0


@dataclass(frozen=True)
class SegmentParts:
    """What one segment hands the `SegtrainCallback` of each of its `fit` calls."""

    progress: SegmentProgress
    checkpointer: Checkpointer
    policy: BoundaryPolicy
    stop: StopFlag
    user_callbacks: list  # the script's, before this one in the list
    epochs_log: Path
    num_samples: int | None  # the training data's, where it says (for the epoch's record)
    on_epoch: OnEpoch  # each epoch's record as it ends; may return a reason to stop the run there
    peers: Peers = ALONE


class GlobalRngAcrossDataEnd(keras.callbacks.Callback):
    """The backend's global generator, between an epoch's last batch and its validation, as one long `fit` has it.

    On torch, Keras makes a new DataLoader iterator when a `fit` call's data
    ends, and torch draws its seed from the global generator (which an unseeded
    Dropout draws its masks from): a segment's data ends at its last epoch, one
    long fit's only at the run's. Nothing else draws from it between an epoch's
    last batch and the validation in one long fit (measured: torch 2.13, Keras
    3.15), so the generator goes back to where the last batch left it at the
    first hook after the batches: the validation's start, or the epoch's end
    where none runs (this callback is first in the list). The validation's
    own draws then follow as in one long fit, and segtrain's callback (the last)
    takes the state at the epoch's end, which the next epoch's first batch finds.
    Nothing to do on a backend without such a generator (TensorFlow, JAX).
    """

    def __init__(self) -> None:
        super().__init__()
        self.after_last_batch: dict[str, str] | None = None
        self.in_use = model_state.global_rng_state() is not None

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.in_use and batch + 1 == self.params.get("steps"):
            self.after_last_batch = model_state.global_rng_state()

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._back()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._back()

    def _back(self) -> None:
        if self.after_last_batch is not None:
            model_state.restore_global_rng_state(self.after_last_batch)
            self.after_last_batch = None


class SegtrainCallback(keras.callbacks.Callback):
    """segtrain's own callback, last in the list: it sees every epoch after the user's callbacks."""

    def __init__(self, call: FitCall, parts: SegmentParts, restored: Restored | None):
        super().__init__()
        self.call, self.parts, self.restored = call, parts, restored
        self.epoch_start = 0.0
        self.offset = 0
        self.kept_weights: list | None = None
        self._device_mb: float | None = None  # the newest epoch's device memory

    @property
    def steps_per_epoch(self) -> int:
        return self.parts.checkpointer.steps_per_epoch

    def on_train_begin(self, logs: dict | None = None) -> None:
        # The user's callbacks have just reset themselves: give them their state back.
        if self.restored is not None and self.restored.callback_states is not None:
            callback_state.restore(
                self.parts.user_callbacks, self.restored.callback_states, self.restored.callback_arrays
            )

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_start = time.perf_counter()
        self.offset = self.call.start_batch if epoch - self.call.shift == self.call.first else 0
        if self.offset and self.restored is not None and self.restored.metric_states is not None:
            # fit has just reset the metrics (and built them before on_train_begin):
            # an epoch resumed in its middle goes on from the saved running means.
            model_state.restore_metric_states(self.model, self.restored.metric_states)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        # The backend's global generator goes back as late as it can: setting up `fit` may draw from it
        # (torch's DataLoader draws a seed for each new iterator), which one long `fit` did only once.
        if self.restored is not None and self.restored.global_rng is not None:
            model_state.restore_global_rng_state(self.restored.global_rng)
            self.restored = dataclasses.replace(self.restored, global_rng=None)

    def _agree(self, boundary: bool = False) -> tuple[bool, bool]:
        """With the run's other processes (many hosts): whether to stop here (a signal that any got) and whether
        any wants a boundary.

        Every process calls it at the same points (each batch's end, each epoch's
        end) and decides on the same gathered rows, so all stop at the same batch,
        or end the segment at the same epoch. A signal that arrives while the
        gather waits for the others (its handler runs once the gather returns)
        counts at the next one: deciding on the live flag there stopped one
        process alone, and its peer waited in the next step's collective for good.
        """
        if self.parts.peers.count == 1:
            return self.parts.stop.requested, boundary
        rows = self.parts.peers.gather([self.parts.stop.signum or 0, int(boundary)])
        signum = next((row[0] for row in rows if row[0]), 0)
        if signum and not self.parts.stop.requested:
            self.parts.stop.signal = signal.Signals(signum).name
        return bool(signum), any(row[1] for row in rows)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.parts.progress.trained_a_batch = True
        stop, _ = self._agree()
        done = self.offset + batch + 1
        if not stop:
            return
        if done < self.steps_per_epoch:
            # A checkpoint in the middle of the epoch: the global generator as this batch left it.
            self.parts.progress.global_rng = model_state.global_rng_state()
            result = self.parts.progress.result
            epoch = result.end_epoch
            result.outcome, result.stop_reason = SegmentOutcome.PREEMPTED, self.parts.stop.signal
            self.parts.checkpointer.save(epoch, done, metrics=model_state.metric_states(self.model))
            raise Preempted(f"Stopped by {self.parts.stop.signal} in epoch {epoch + 1}, after batch {done}.")

    def on_epoch_end(self, keras_epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self.epoch_start
        # What the next epoch's first batch finds in one long `fit` (GlobalRngAcrossDataEnd): what a checkpoint keeps.
        self.parts.progress.global_rng = model_state.global_rng_state()
        epoch = keras_epoch - self.call.shift
        logs = dict(logs or {})
        verdict = self._record(epoch, seconds, logs)
        result, segment = self.parts.progress.result, self.parts.checkpointer.segment
        total = self.parts.checkpointer.epochs_total
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            result.outcome, result.stop_reason = SegmentOutcome.NAN, f"loss became {loss} in epoch {epoch + 1}"
            self.model.stop_training = True
            return
        if self.model.stop_training or verdict is not None:
            result.outcome, result.pruned = SegmentOutcome.STOPPED, verdict is not None
            result.stop_reason = verdict or who_stopped(self.parts.user_callbacks, keras_epoch)
            self.model.stop_training = True
            return
        why = self.parts.policy.observe(seconds, self.parts.progress.rss_samples[-1], self._device_mb)
        stop, boundary = self._agree(why is not None)
        if boundary and why is None:
            why = "another process of the run ended its segment here"
        if why and epoch + 1 < min(self.call.last, total) and not stop:
            # End the segment here: checkpoint, then let fit end normally (on_train_end runs).
            result.boundary_reason = why
            self.parts.checkpointer.save(epoch + 1, 0)
            self.model.stop_training = True
            return
        preempted = stop and epoch + 1 < total  # at the end the final save follows
        if self.parts.checkpointer.due(epoch + 1) or preempted:
            self.parts.checkpointer.save(epoch + 1, 0)
        if preempted:
            result.outcome, result.stop_reason = SegmentOutcome.PREEMPTED, self.parts.stop.signal
            raise Preempted(f"Stopped by {self.parts.stop.signal} after epoch {epoch + 1}.")
        if epoch + 1 == self.call.last < segment.end_epoch:
            # Another fit call follows in this process, and on_train_end may change the
            # weights (EarlyStopping(restore_best_weights=True) does): keep the epoch's.
            self.kept_weights = self.model.get_weights()

    def _record(self, epoch: int, seconds: float, logs: dict[str, Any]) -> str | None:
        """The epoch in the history, the segment's result, epochs.jsonl and the parent; the parent's verdict."""
        progress, result = self.parts.progress, self.parts.progress.result
        for key, value in logs.items():
            progress.history.setdefault(key, []).append(float(value))
        result.end_epoch = epoch + 1
        if epoch == self.parts.checkpointer.segment.start_epoch:
            result.first_epoch_seconds = seconds
        result.epoch_seconds.append(seconds)
        result.final_logs = {k: float(v) for k, v in logs.items()}
        record = epoch_record(
            epoch, result.index, seconds, self.steps_per_epoch - self.offset, self.parts.num_samples, logs
        )
        progress.rss_samples.append(record["rss_mb"])
        self._device_mb = record["device_mb"]
        try:
            if self.parts.peers.writes:
                append_line(self.parts.epochs_log, json.dumps(record, sort_keys=True))
        except OSError as e:  # telemetry never stops training; a failing save will say why
            log.warning("Could not append to %s: %s", self.parts.epochs_log, e)
        return self.parts.on_epoch(record)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.kept_weights is not None and not self.parts.progress.stopped:
            self.model.set_weights(self.kept_weights)
            self.kept_weights = None


def who_stopped(callbacks: list, epoch: int) -> str:
    """Which callback stopped training in `epoch` (Keras' index)."""
    for cb in callbacks:
        if type(cb).__name__ == "EarlyStopping" and getattr(cb, "stopped_epoch", 0) == epoch:
            return f"EarlyStopping(monitor={cb.monitor!r}, patience={cb.patience}) at epoch {epoch + 1}"
    return f"a callback set model.stop_training at epoch {epoch + 1}"

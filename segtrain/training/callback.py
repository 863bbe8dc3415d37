"""segtrain's own Keras callback: telemetry, checkpoints and preemption inside `fit`.

It is the last callback in the list, so at each epoch's end it sees the state
the user's callbacks left (EarlyStopping's decision included) before it saves.
"""

from __future__ import annotations

import json
import logging
import math
import time

import keras

from segtrain.state import callback_state, model_state
from segtrain.state.atomic import append_line
from segtrain.errors import Preempted
from segtrain.telemetry.probes import epoch_record

log = logging.getLogger(__name__)


class Controller(keras.callbacks.Callback):
    """segtrain's own callback, last in the list: it sees every epoch after the user's callbacks."""

    def __init__(self, run, first: int, last: int, start_batch: int, pending):
        super().__init__()
        self.run, self.first, self.last, self.start_batch = run, first, last, start_batch
        self.pending = pending
        self.epoch_start = 0.0
        self.kept_weights = None

    def on_train_begin(self, logs=None):
        # The user's callbacks have just reset themselves: give them their state back.
        if self.pending and self.pending[0] is not None:
            callback_state.restore(self.run.callbacks, self.pending[0], self.pending[1])

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()
        self.offset = self.start_batch if epoch == self.first else 0
        if self.offset and self.pending and self.pending[2] is not None:
            # fit has just reset the metrics (and built them before on_train_begin):
            # an epoch resumed in its middle goes on from the saved running means.
            model_state.restore_metric_states(self.model, self.pending[2])

    def on_train_batch_end(self, batch, logs=None):
        self.run.trained_a_batch = True
        if self.run.stop.requested:
            done = self.offset + batch + 1
            epoch = self.epoch
            if done < self.run.spe:
                self.run.result.outcome = "preempted"
                self.run.result.stop_reason = self.run.stop.signal
                self.run.save(epoch, done, metrics=model_state.metric_states(self.model))
                raise Preempted(f"Stopped by {self.run.stop.signal} in epoch {epoch + 1}, after batch {done}.")

    def on_epoch_end(self, epoch, logs=None):
        run, result = self.run, self.run.result
        seconds = time.perf_counter() - self.epoch_start
        logs = dict(logs or {})
        for key, value in logs.items():
            run.history.setdefault(key, []).append(float(value))
        result.end_epoch = epoch + 1
        if epoch == run.segment.start_epoch:
            result.first_epoch_seconds = seconds
        result.epoch_seconds.append(seconds)
        result.final_logs = {k: float(v) for k, v in logs.items()}
        steps = run.spe - self.offset
        samples = getattr(run.ctx.data.train, "num_samples", None)
        record = epoch_record(epoch, run.segment.index, seconds, steps, samples, logs)
        run.rss_samples.append(record["rss_mb"])
        try:
            append_line(run.ctx.paths.epochs_log, json.dumps(record, sort_keys=True))
        except OSError as e:  # telemetry never stops training; a failing save will say why
            log.warning("Could not append to %s: %s", run.ctx.paths.epochs_log, e)
        run.events({"event": "epoch", **record})

        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            result.outcome, result.stop_reason = "nan", f"loss became {loss} in epoch {epoch + 1}"
            self.model.stop_training = True
            return
        if self.model.stop_training:
            result.outcome, result.stop_reason = "stopped", who_stopped(run.callbacks, epoch)
            return
        why = run.policy.observe(seconds, record["rss_mb"], record["device_mb"])
        if why and epoch + 1 < min(self.last, run.cfg.epochs) and not run.stop.requested:
            # End the segment here: checkpoint, then let fit end normally (on_train_end runs).
            result.boundary_reason = why
            run.save(epoch + 1, 0)
            self.model.stop_training = True
            return
        preempted = run.stop.requested and epoch + 1 < run.cfg.epochs  # at the end the final save follows
        if run.should_save(epoch + 1) or preempted:
            run.save(epoch + 1, 0)
        if preempted:
            result.outcome, result.stop_reason = "preempted", run.stop.signal
            raise Preempted(f"Stopped by {run.stop.signal} after epoch {epoch + 1}.")
        if epoch + 1 == self.last < run.segment.end_epoch:
            # Another fit call follows in this process, and on_train_end may change the
            # weights (EarlyStopping(restore_best_weights=True) does): keep the epoch's.
            self.kept_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.kept_weights is not None and not self.run.stopped:
            self.model.set_weights(self.kept_weights)
            self.kept_weights = None

    @property
    def epoch(self) -> int:
        return self.run.result.end_epoch


def who_stopped(callbacks: list, epoch: int) -> str:
    for cb in callbacks:
        if type(cb).__name__ == "EarlyStopping" and getattr(cb, "stopped_epoch", 0) == epoch:
            return f"EarlyStopping(monitor={cb.monitor!r}, patience={cb.patience}) at epoch {epoch + 1}"
    return f"a callback set model.stop_training at epoch {epoch + 1}"

"""One segment of training in the current process: load or build, fit, checkpoint.

This is the code both isolation modes share: process isolation runs it in a
fresh worker per segment, session isolation runs it in a loop with a cleared
Keras session between calls. Every process sets itself up in the same order
(seed, script, data, model, callbacks, RNG states) so that the numbers do not
depend on where a boundary fell.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from segtrain import backends
from segtrain.backends import distribution
from segtrain.backends.distribution import ONE, Replicas
from segtrain.backends.hosts import ALONE, Peers
from segtrain.config import Isolation, RunConfig
from segtrain.errors import ConfigError, Preempted, ScriptError
from segtrain.outcomes import SegmentOutcome
from segtrain.paths import RunPaths
from segtrain.state import callback_state, checkpoint, model_state
from segtrain.state.atomic import read_lines_json
from segtrain.state.checkpoint_state import CheckpointState
from segtrain.state.export import export
from segtrain.telemetry.probes import device_memory_mb, peak_rss_mb, reset_device_peak, rss_mb
from segtrain.training.boundaries import AUTO, BoundaryPolicy, estimate_cost, estimate_spare_cost
from segtrain.training.callback import (
    FitCall,
    GlobalRngAcrossDataEnd,
    Restored,
    SegmentParts,
    SegtrainCallback,
)
from segtrain.training.checkpointing import Checkpointer, SegmentProgress
from segtrain.training.data import Fold, Source, TrainingData, prepare
from segtrain.training.records import OnEpoch, Segment, SegmentResult
from segtrain.training.script import TrainingScript
from segtrain.training.signals import StopFlag

log = logging.getLogger(__name__)


def seed_everything(cfg: RunConfig, keep_compiled: bool = False) -> None:
    """Seed Python, NumPy and the backend, and make its ops deterministic, when the run is seeded.

    `keep_compiled`: a warmed-up model will train; keep the functions its warm-up compiled.
    """
    if cfg.seed is not None:
        backends.current().seed(cfg.seed, keep_compiled)


@dataclass
class ProcessContext:
    """What a process loads once and keeps across the segments it runs."""

    cfg: RunConfig
    paths: RunPaths
    script: TrainingScript
    data: TrainingData
    raw_data: Any  # what load_data() returned, for a script's own train_epoch()
    replicas: Replicas = ONE  # the data-parallel engine models are built, loaded and trained in (--distribute)
    warm_model: Any = None  # built and traced by `warm_up` while the worker waited
    warm_fresh: model_state.FreshState | None = None  # a new run's warm model: its state before the warm-up step
    peers: Peers = ALONE  # the run's other processes (many hosts), joined already

    @classmethod
    def open(
        cls, cfg: RunConfig, data_seed: int, script: TrainingScript | None = None, peers: Peers = ALONE
    ) -> ProcessContext:
        """Set this process up for `cfg`'s run; `peers`: the run's processes on other hosts, joined already."""
        backend = backends.current()
        if cfg.format not in backend.formats:
            raise ConfigError(
                f"--format {cfg.format} is not available on the {backend.name!r} backend, which this process "
                f"runs Keras on (it supports {', '.join(sorted(backend.formats))}). Use --format keras or h5, "
                "or KERAS_BACKEND=tensorflow."
            )
        replicas = distribution.replicas(cfg.distribute)  # first: it may split the CPU into devices
        seed_everything(cfg)
        if cfg.seed is None and peers.count > 1:  # unseeded, but every host must build the same initial weights
            backend.seed(peers.gather([secrets.randbelow(2**31)])[0][0])
        if script is None:
            script = TrainingScript.load(cfg.script, cfg.debug, cfg.params, module=cfg.module, functions=cfg.functions)
        else:  # imported already (a worker imports before it knows its run): this run's params
            script = dataclasses.replace(script, params=dict(cfg.params))
        if script.train_epoch is not None and peers.count > 1:
            raise ConfigError(
                f"{script.path}: a script's own train_epoch() runs in one process; many hosts train through fit()."
            )
        raw = script.call("load_data", cfg.debug)
        fold = None if cfg.fold is None else Fold(**cfg.fold)
        share = (peers.index, peers.count)
        data = prepare(raw, {**script.fit_kwargs, **cfg.fit_kwargs}, data_seed, script.path, fold, share, cfg.launched)
        return cls(cfg, RunPaths(cfg.directory), script, data, raw, replicas, peers=peers)

    def first_batch(self) -> tuple:
        """The first training batch `(x, y, sample_weight)`: what builds a subclassed model, or its own optimizers."""
        return first_batch(self.data.train.fit_input(0, 1))


def restore(ctx: ProcessContext, model: Any, ckpt: checkpoint.Checkpoint) -> tuple[SegmentResult, CheckpointState]:
    """Load a complete run's final checkpoint into `model`, training nothing.

    For a launched script (`segtrain run`) whose run is complete: its `fit`
    returns at once with the trained model, and the script goes on. Returns
    an untrained segment's result, with the run's outcome, and the
    checkpoint's state. The script's callbacks get their saved state back.
    """
    seed_everything(ctx.cfg)
    with ctx.replicas.scope():
        loaded = checkpoint.load_model_files(
            ckpt, lambda: model, ctx.script.custom_objects, ctx.first_batch, model=model
        )
    model_state.verify(loaded, ckpt.state.fingerprint, f"Checkpoint {ckpt.path}")
    model_state.restore_seed_states(loaded, ckpt.state.rng)
    callbacks = ctx.script.callbacks(ctx.cfg.debug)
    for cb in callbacks:
        cb.set_model(loaded)
    if ckpt.state.callbacks is not None:
        callback_state.restore(callbacks, ckpt.state.callbacks, _load_arrays(ckpt))
    outcome = SegmentOutcome.STOPPED if ckpt.stopped else SegmentOutcome.FINISHED
    return SegmentResult(0, ckpt.epoch, ckpt.epoch, outcome, ckpt.state.stop_reason, ckpt.pruned), ckpt.state


def _as_new_fit_call(model: Any, callbacks: list, restored: Restored) -> Restored:
    """A stopped run trained on (`resume --continue`): its callbacks as one process's next `fit` call finds them.

    Their saved state goes back before `fit`, whose `on_train_begin` then resets
    what Keras resets for a new call (EarlyStopping's wait and best): not after
    it, as at a segment boundary inside one call.
    """
    for cb in callbacks:
        cb.set_model(model)
    if restored.callback_states is not None:
        callback_state.restore(callbacks, restored.callback_states, restored.callback_arrays)
    return dataclasses.replace(restored, callback_states=None)


def run_segment(
    ctx: ProcessContext,
    segment: Segment,
    ckpt: checkpoint.Checkpoint | None,
    stop: StopFlag,
    on_epoch: OnEpoch,
    start_seconds: float = 0.0,
) -> SegmentResult:
    """Train `segment`, starting from `ckpt` (None: a new model), and checkpoint it.

    `on_epoch` receives each epoch's record as it ends, and may return a reason
    to stop the run there (a sweep's pruner). `start_seconds` is what
    starting this segment's process cost, for the first estimate of a
    boundary's cost under `--segment auto`.
    """
    return _SegmentTrainer(ctx, segment, stop, on_epoch).train(ckpt, start_seconds)


class _SegmentTrainer:
    def __init__(self, ctx: ProcessContext, segment: Segment, stop: StopFlag, on_epoch: OnEpoch):
        self.ctx, self.segment, self.stop, self.on_epoch = ctx, segment, stop, on_epoch
        self.cfg = ctx.cfg
        self.progress = SegmentProgress(
            SegmentResult(segment.index, segment.start_epoch, segment.start_epoch, SegmentOutcome.BOUNDARY)
        )

    @property
    def result(self) -> SegmentResult:
        return self.progress.result

    def train(self, ckpt: checkpoint.Checkpoint | None, start_seconds: float) -> SegmentResult:
        """The segment, in the scope of the run's data-parallel engine where it has one (build, load, fit)."""
        self.result.replicas = self.ctx.replicas.count
        with self.ctx.replicas.scope():
            return self._train(ckpt, start_seconds)

    def _train(self, ckpt: checkpoint.Checkpoint | None, start_seconds: float) -> SegmentResult:
        t0 = time.perf_counter()
        reset_device_peak()
        restored, start_batch = None, 0
        warm, self.ctx.warm_model = self.ctx.warm_model, None
        fresh, self.ctx.warm_fresh = self.ctx.warm_fresh, None
        seed_everything(self.cfg, keep_compiled=warm is not None)
        if ckpt is None:
            _warn_if_inexact(self.ctx)
            if warm is not None and fresh is not None:  # built and traced ahead: as it was built, before its step
                model = warm
                fresh.put_back(model)
            else:
                model = self.ctx.script.build_model(self.cfg.debug)
        else:
            self.result.resumed_from = ckpt.path.name
            model = self._load(ckpt, warm)
            state = ckpt.state
            self.progress.history = {k: list(v) for k, v in state.history.items()}
            restored = Restored(state.callbacks, _load_arrays(ckpt), state.metrics, state.global_rng)
            start_batch = ckpt.batch
        callbacks = self.ctx.script.callbacks(self.cfg.debug)
        if ckpt is not None and ckpt.stopped and restored is not None:
            restored = _as_new_fit_call(model, callbacks, restored)
        callback_state.prepare(callbacks, restored.callback_states if restored else None)
        self.model, self.callbacks = model, callbacks
        self.checkpointer = Checkpointer(
            self.ctx.paths,
            self.cfg.format,
            self.cfg.keep,
            self.cfg.save_every,
            self.cfg.epochs,
            self.segment,
            self.ctx.data.steps_per_epoch,
            self.progress,
            model,
            callbacks,
            self.ctx.peers,
        )
        self.result.load_seconds = time.perf_counter() - t0
        cold_start = self.cfg.isolation == Isolation.PROCESS and not self.cfg.prestart
        records = read_lines_json(self.ctx.paths.segments_log)
        self.policy = BoundaryPolicy(
            auto=self.cfg.segment == AUTO,
            max_memory_mb=self.cfg.max_memory,
            boundary_cost=estimate_cost(records, self.result.load_seconds, start_seconds if cold_start else 0.0),
            spare_cost=estimate_spare_cost(records),
        )
        num_samples = getattr(self.ctx.data.train, "num_samples", None)
        self.parts = SegmentParts(
            self.progress, self.checkpointer, self.policy, self.stop, callbacks, self.ctx.paths.epochs_log,
            num_samples, self.on_epoch, self.ctx.peers,
        )  # fmt: skip
        t1 = time.perf_counter()
        try:
            self._fit_segment(start_batch, restored)
        except Preempted:
            pass  # the checkpoint is written and the outcome recorded
        finally:
            self.result.train_seconds = time.perf_counter() - t1 - self.result.save_seconds
            # A worker's lifetime peak is the segment's; in session isolation it is the whole run's.
            samples = [*self.progress.rss_samples, rss_mb()]
            self.result.peak_rss_mb = peak_rss_mb() if self.cfg.isolation == Isolation.PROCESS else max(samples)
            device = device_memory_mb()
            self.result.peak_device_mb = None if device is None else device["peak"]
        return self.result

    def _load(self, ckpt: checkpoint.Checkpoint, warm: Any = None) -> Any:
        script = self.ctx.script
        model = checkpoint.load_model_files(
            ckpt,
            lambda: script.build_model(self.cfg.debug),
            script.custom_objects,
            self.ctx.first_batch,
            model=warm,
        )
        model_state.create_fit_variables(model, self.ctx.first_batch)  # one trace of the step, not two
        model_state.verify(model, ckpt.state.fingerprint, f"Checkpoint {ckpt.path}")
        model_state.restore_seed_states(model, ckpt.state.rng)
        return model

    def _fit_segment(self, start_batch: int, restored: Restored | None) -> None:
        seg, shift = self.segment, self.ctx.script.initial_epoch
        epoch = seg.start_epoch
        if start_batch:
            # The rest of an epoch that a signal interrupted, then the rest of the segment.
            self._build_metrics(restored.metric_states if restored else None)
            self._fit(FitCall(epoch, epoch + 1, start_batch, shift), restored)
            restored = None
            epoch += 1
        if epoch < seg.end_epoch and not self.progress.stopped:
            self._fit(FitCall(epoch, seg.end_epoch, shift=shift), restored)
        self._finish()

    def _build_metrics(self, saved: list | None) -> None:
        """Create the compiled metrics' variables so that their saved running state can be set.

        Keras builds them lazily in the first traced step (fit builds them ahead
        only under a distribution strategy); one `evaluate` step builds them
        without touching weights, optimizer or RNG states.
        """
        if saved is not None and len(self.model.metrics_variables) != len(saved):
            self.model.evaluate(self.ctx.data.train.fit_input(0, 1), verbose=0)

    def _fit(self, call: FitCall, restored: Restored | None) -> None:
        own = SegtrainCallback(call, self.parts, restored)
        if self.ctx.script.train_epoch is not None:
            self._own_loop(call, own)
            return
        data, spe = self.ctx.data, self.ctx.data.steps_per_epoch
        try:
            self.model.fit(
                data.train.fit_input(call.first * spe + call.start_batch, call.last * spe),
                initial_epoch=call.first + call.shift,
                epochs=call.last + call.shift,
                steps_per_epoch=spe - call.start_batch,
                validation_data=data.validation,
                # The generator's guard first, then a PyDataset's epoch hooks, the script's callbacks, segtrain's.
                callbacks=[GlobalRngAcrossDataEnd(), *data.callbacks(call.shift), *self.callbacks, own],
                shuffle=False,
                verbose=0,
                **data.fit_kwargs,
            )
        except (Preempted, ScriptError):
            raise
        except (ValueError, TypeError) as e:
            lost = self.ctx.peers.count > 1 and backends.current().peers_lost(str(e))
            if self.progress.trained_a_batch or lost:
                raise
            source = Source(self.ctx.script.path, self.cfg.launched)
            raise ScriptError(
                f"{source.script}: training on {source.data} failed: {type(e).__name__}: {str(e).strip()[:2000]}\n"
                f"Check that the shapes and dtypes of x and y match the inputs and outputs of {source.model}."
            ) from e

    def _own_loop(self, call: FitCall, own: SegtrainCallback) -> None:
        """Epochs [first, last) through the script's `train_epoch(model, data, epoch)` instead of `fit`.

        The callbacks see the same events as in `fit`, at epoch granularity, so
        checkpoints, telemetry, preemption (acted on at the end of an epoch) and
        callback state work as with `fit`.
        """
        import keras

        callbacks = keras.callbacks.CallbackList([*self.callbacks, own], model=self.model)
        self.model.stop_training = False
        callbacks.on_train_begin()
        for epoch in range(call.first, call.last):
            callbacks.on_epoch_begin(epoch)
            logs = self.ctx.script.call_train_epoch(self.model, self.ctx.raw_data, epoch, self.cfg.debug)
            self.progress.trained_a_batch = True
            callbacks.on_epoch_end(epoch, logs)
            if self.model.stop_training:
                break
        callbacks.on_train_end()

    def _finish(self) -> None:
        result = self.result
        if result.outcome == SegmentOutcome.NAN:
            return
        if self.progress.stopped or result.end_epoch >= self.cfg.epochs:
            if result.outcome != SegmentOutcome.STOPPED:
                result.outcome = SegmentOutcome.FINISHED
            self.checkpointer.save(result.end_epoch, 0, final=True)
            if self.cfg.export is not None and self.ctx.peers.writes:
                with self.ctx.peers.alone():
                    export(self.model, self.cfg.export)


def _warn_if_inexact(ctx: ProcessContext) -> None:
    """Before a run trains: name data that segmenting cannot replay exactly, and the fix (`TrainingData.inexact`)."""
    for reason in ctx.data.inexact(Source(ctx.script.path, ctx.cfg.launched), seeded=ctx.cfg.seed is not None):
        log.warning("%s: %s", ctx.script.path, reason)


def _load_arrays(ckpt: checkpoint.Checkpoint) -> dict[str, Any]:
    path = ckpt.path / "arrays.npz"
    if not path.exists():
        return {}
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def first_batch(fit_input: Any) -> tuple:
    """The first batch of a fit input (tf.data, PyDataset, generator) as `(x, y, sample_weight)`, None where absent."""
    batch = next(iter(fit_input.take(1) if hasattr(fit_input, "take") else fit_input))
    parts = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
    return (*parts, None, None)[:3]

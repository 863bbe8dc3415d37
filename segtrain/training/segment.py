"""One segment of training in the current process: load or build, fit, checkpoint.

This is the code both isolation modes share: process isolation runs it in a
fresh worker per segment, session isolation runs it in a loop with a cleared
Keras session between calls. Every process sets itself up in the same order
(seed, script, data, model, callbacks, RNG states) so that the numbers do not
depend on where a boundary fell.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from segtrain.state import callback_state, checkpoint, model_state
from segtrain.state.atomic import read_lines_json
from segtrain.training.boundaries import AUTO, BoundaryPolicy, estimate_cost
from segtrain.config import RunConfig
from segtrain.training.data import TrainingData, prepare
from segtrain.errors import ConfigError, Preempted, ScriptError
from segtrain.run.paths import RunPaths
from segtrain.training.script import TrainingScript
from segtrain.telemetry.probes import device_memory_mb, peak_rss_mb, reset_device_peak, rss_mb

Events = Callable[[dict], None]


@dataclass(frozen=True)
class Segment:
    """Epochs [start_epoch, end_epoch) of a run (0-based, like Keras' `initial_epoch`)."""

    index: int
    start_epoch: int
    end_epoch: int


def next_segment(epochs_done: int, total: int, length: int | str, index: int) -> Segment:
    """The segment that starts at `epochs_done`.

    Fixed boundaries fall on multiples of `length`; with `"auto"` the segment may
    run to the end and `BoundaryPolicy` ends it, and `index` numbers it.
    """
    if length == AUTO:
        return Segment(index, epochs_done, total)
    fixed = epochs_done // length
    return Segment(fixed, epochs_done, min(total, (fixed + 1) * length))


@dataclass
class SegmentResult:
    """What a segment did; one line of segments.jsonl once the runner adds its own timings."""

    index: int
    start_epoch: int
    end_epoch: int  # epochs completed when the segment ended
    outcome: str  # "boundary", "finished", "stopped", "preempted", "nan"
    stop_reason: str | None = None
    train_seconds: float = 0.0
    load_seconds: float = 0.0
    save_seconds: float = 0.0
    first_epoch_seconds: float | None = None
    epoch_seconds: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    peak_device_mb: float | None = None
    final_logs: dict[str, float] = field(default_factory=dict)
    boundary_reason: str | None = None  # why the segment ended before its planned end
    checkpoint: str | None = None  # the newest checkpoint this segment wrote
    resumed_from: str | None = None  # the checkpoint it started from

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class StopFlag:
    """Set by a signal handler; read by training at the end of each batch."""

    def __init__(self) -> None:
        self.signal: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def signum(self) -> int | None:
        import signal

        return None if self.signal is None else int(getattr(signal, self.signal))


def seed_everything(cfg: RunConfig) -> None:
    """Seed Python, NumPy and the backend; make TF ops deterministic when seeded."""
    import keras

    if cfg.seed is None:
        return
    keras.utils.set_random_seed(cfg.seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


@dataclass
class ProcessContext:
    """What a process loads once and keeps across the segments it runs."""

    cfg: RunConfig
    paths: RunPaths
    script: TrainingScript
    data: TrainingData
    raw_data: Any  # what load_data() returned, for a script's own train_epoch()
    warm_model: Any = None  # built and traced by `warm_up` while the worker waited

    @classmethod
    def open(cls, cfg: RunConfig, data_seed: int, script: TrainingScript | None = None) -> "ProcessContext":
        import keras

        if cfg.format == "savedmodel" and keras.backend.backend() != "tensorflow":
            raise ConfigError(
                f"--format savedmodel (tf.train.Checkpoint) needs the TensorFlow backend; this process runs "
                f"Keras on {keras.backend.backend()!r}. Use --format keras or h5, or KERAS_BACKEND=tensorflow."
            )
        seed_everything(cfg)
        script = script or TrainingScript.load(cfg.script, cfg.debug)
        raw = script.call("load_data", cfg.debug)
        data = prepare(raw, script.fit_kwargs, data_seed, script.path)
        return cls(cfg, RunPaths(cfg.run_dir), script, data, raw)


def warm_up(ctx: ProcessContext) -> float:
    """Build the model and train it one step while this worker waits for its checkpoint; return seconds.

    A fresh process traces the train step (and its first kernels) in its first
    batch: 0.5-1.5 s per boundary on a CPU, on the critical path. A pre-started
    worker does it ahead, while the previous segment still trains, and then
    loads the checkpoint into this model: that overwrites everything the step
    changed (weights, optimizer variables and iterations, seed states — the
    fingerprint check proves it) while the traced functions stay. Never where an
    accelerator may be (the caller only calls it once the data is loaded, which
    is deferred there), nor for a script's own `train_epoch()`.
    """
    if ctx.script.train_epoch is not None:
        return 0.0
    t0 = time.perf_counter()
    data = ctx.data
    kwargs = dict(data.fit_kwargs, epochs=1, steps_per_epoch=1, shuffle=False, verbose=0,
                  validation_data=data.validation)
    if data.validation is not None:
        kwargs["validation_steps"] = 1
    model = ctx.script.build_model(ctx.cfg.debug)
    model.fit(data.train.fit_input(0, 1), **kwargs)
    ctx.warm_model = model
    return time.perf_counter() - t0


def run_segment(ctx: ProcessContext, segment: Segment, ckpt: checkpoint.Checkpoint | None,
                stop: StopFlag, events: Events, start_seconds: float = 0.0) -> SegmentResult:
    """Train `segment`, starting from `ckpt` (None: a new model), and checkpoint it.

    `start_seconds` is what starting this segment's process cost, for the first
    estimate of a boundary's cost under `--segment auto`.
    """
    run = _SegmentRun(ctx, segment, stop, events)
    return run.execute(ckpt, start_seconds)


class _SegmentRun:
    def __init__(self, ctx: ProcessContext, segment: Segment, stop: StopFlag, events: Events):
        self.ctx, self.segment, self.stop, self.events = ctx, segment, stop, events
        self.cfg = ctx.cfg
        self.spe = ctx.data.steps_per_epoch
        self.result = SegmentResult(segment.index, segment.start_epoch, segment.start_epoch, "boundary")
        self.history: dict[str, list[float]] = {}
        self.model: Any = None
        self.callbacks: list = []
        self.trained_a_batch = False
        self.rss_samples: list[float] = []

    # -- loading -----------------------------------------------------------
    def execute(self, ckpt: checkpoint.Checkpoint | None, start_seconds: float = 0.0) -> SegmentResult:
        t0 = time.perf_counter()
        reset_device_peak()
        seed_everything(self.cfg)
        states, arrays, metric_state = None, None, None
        start_batch = 0
        warm, self.ctx.warm_model = self.ctx.warm_model, None
        if ckpt is None:
            self.model = self.ctx.script.build_model(self.cfg.debug)
        else:
            self.result.resumed_from = ckpt.path.name
            self.model = self._load(ckpt, warm)
            state = ckpt.state
            self.history = {k: list(v) for k, v in state.get("history", {}).items()}
            states = state.get("callbacks")
            arrays = _load_arrays(ckpt)
            start_batch = ckpt.batch
            metric_state = state.get("metrics")
        self.callbacks = self.ctx.script.callbacks(self.cfg.debug)
        callback_state.prepare(self.callbacks, states)
        self.result.load_seconds = time.perf_counter() - t0
        cold_start = self.cfg.isolation == "process" and not self.cfg.prestart
        self.policy = BoundaryPolicy(
            auto=self.cfg.segment == AUTO, max_memory_mb=self.cfg.max_memory,
            boundary_cost=estimate_cost(read_lines_json(self.ctx.paths.segments_log), self.result.load_seconds,
                                        start_seconds if cold_start else 0.0),
        )
        t1 = time.perf_counter()
        try:
            self._train(start_batch, states, arrays, metric_state)
        except Preempted:
            pass  # the checkpoint is written and the outcome recorded
        finally:
            self.result.train_seconds = time.perf_counter() - t1 - self.result.save_seconds
            # A worker's lifetime peak is the segment's; in session isolation it is the whole run's.
            samples = self.rss_samples + [rss_mb()]
            self.result.peak_rss_mb = peak_rss_mb() if self.cfg.isolation == "process" else max(samples)
            device = device_memory_mb()
            self.result.peak_device_mb = None if device is None else device["peak"]
        return self.result

    def _load(self, ckpt: checkpoint.Checkpoint, warm: Any = None) -> Any:
        script = self.ctx.script
        model = checkpoint.load_model_files(
            ckpt, lambda: script.build_model(self.cfg.debug), script.custom_objects,
            lambda: first_inputs(self.ctx.data.train.fit_input(0, 1)), model=warm,
        )
        where = f"Checkpoint {ckpt.path}"
        model_state.verify(model, ckpt.state["fingerprint"], where)
        model_state.restore_seed_states(model, ckpt.state["rng"])
        return model

    # -- training ----------------------------------------------------------
    def _train(self, start_batch: int, states, arrays, metric_state) -> None:
        seg = self.segment
        epoch = seg.start_epoch
        pending = (states, arrays, metric_state)
        if start_batch:
            # The rest of an epoch that a signal interrupted, then the rest of the segment.
            self._build_metrics(metric_state)
            self._fit(epoch, epoch + 1, start_batch, pending)
            pending = None
            epoch += 1
        if epoch < seg.end_epoch and not self.stopped:
            self._fit(epoch, seg.end_epoch, 0, pending)
        self._finish()

    def _build_metrics(self, saved: list | None) -> None:
        """Create the compiled metrics' variables so that their saved running state can be set.

        Keras builds them lazily in the first traced step (fit builds them ahead
        only under a distribution strategy); one `evaluate` step builds them
        without touching weights, optimizer or RNG states.
        """
        if saved is not None and len(self.model.metrics_variables) != len(saved):
            self.model.evaluate(self.ctx.data.train.fit_input(0, 1), verbose=0)

    def _fit(self, first: int, last: int, start_batch: int, pending) -> None:
        data = self.ctx.data
        first_step = first * self.spe + start_batch
        from segtrain.training.callback import Controller

        controller = Controller(self, first, last, start_batch, pending)
        if self.ctx.script.train_epoch is not None:
            self._own_loop(first, last, controller)
            return
        try:
            self.model.fit(
                data.train.fit_input(first_step, last * self.spe),
                initial_epoch=first,
                epochs=last,
                steps_per_epoch=self.spe - start_batch,
                validation_data=data.validation,
                callbacks=[*self.callbacks, controller],
                shuffle=False,
                verbose=0,
                **data.fit_kwargs,
            )
        except (Preempted, ScriptError):
            raise
        except (ValueError, TypeError) as e:
            if self.trained_a_batch:
                raise
            raise ScriptError(
                f"{self.ctx.script.path}: training on the data from `load_data()` failed: "
                f"{type(e).__name__}: {str(e).strip()[:2000]}\nCheck that the shapes and dtypes of x and y "
                "match the inputs and outputs of the model from `build_model()`."
            ) from e

    def _own_loop(self, first: int, last: int, controller: Any) -> None:
        """Epochs [first, last) through the script's `train_epoch(model, data, epoch)` instead of `fit`.

        The callbacks see the same events as in `fit`, at epoch granularity, so
        checkpoints, telemetry, preemption (acted on at the end of an epoch) and
        callback state work as with `fit`.
        """
        import keras

        callbacks = keras.callbacks.CallbackList([*self.callbacks, controller], model=self.model)
        self.model.stop_training = False
        callbacks.on_train_begin()
        for epoch in range(first, last):
            callbacks.on_epoch_begin(epoch)
            logs = self.ctx.script.call_train_epoch(self.model, self.ctx.raw_data, epoch, self.cfg.debug)
            self.trained_a_batch = True
            callbacks.on_epoch_end(epoch, logs)
            if self.model.stop_training:
                break
        callbacks.on_train_end()

    @property
    def stopped(self) -> bool:
        """Whether a callback or a NaN loss ended the run (not a boundary, not a signal)."""
        return self.result.outcome in ("stopped", "nan")

    def _finish(self) -> None:
        total = self.cfg.epochs
        if self.result.outcome == "nan":
            return
        if self.stopped or self.result.end_epoch >= total:
            if self.result.outcome != "stopped":
                self.result.outcome = "finished"
            self.save(self.result.end_epoch, 0, final=True)
            if self.cfg.export is not None:
                checkpoint.export(self.model, self.cfg.export)

    # -- checkpointing -----------------------------------------------------
    def save(self, epoch: int, batch: int, final: bool = False, metrics: list | None = None) -> None:
        t0 = time.perf_counter()
        cb_states, arrays = callback_state.capture(self.callbacks)
        state = {
            "fingerprint": model_state.fingerprint(self.model),
            "rng": model_state.seed_states(self.model),
            "callbacks": cb_states,
            "history": self.history,
            "steps_per_epoch": self.spe,
            "segment": self.segment.index,
            "outcome": self.result.outcome if final else None,
            "stop_reason": self.result.stop_reason,
            "created": time.time(),
        }
        if metrics is not None:
            state["metrics"] = metrics
        snap = checkpoint.Snapshot(epoch=epoch, batch=batch, final=final, state=state, arrays=arrays)
        ckpt = checkpoint.save(self.model, self.ctx.paths, self.cfg.format, snap)
        checkpoint.prune(self.ctx.paths, self.cfg.keep, ckpt)
        self.result.checkpoint = ckpt.path.name
        self.result.save_seconds += time.perf_counter() - t0
        self.events({"event": "checkpoint", "path": ckpt.path.name, "epoch": epoch, "batch": batch})

    def should_save(self, epochs_done: int) -> bool:
        if epochs_done >= self.cfg.epochs:
            return False  # the final checkpoint is written after fit returns
        if epochs_done == self.segment.end_epoch:
            return True
        every = self.cfg.save_every
        return bool(every) and epochs_done % every == 0


def _load_arrays(ckpt: checkpoint.Checkpoint) -> Any:
    path = ckpt.path / "arrays.npz"
    if not path.exists():
        return {}
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def first_inputs(fit_input: Any) -> Any:
    """The inputs of the first batch of a fit input (tf.data or PyDataset)."""
    if hasattr(fit_input, "take"):
        batch = next(iter(fit_input.take(1)))
    else:
        batch = fit_input[0]
    return batch[0] if isinstance(batch, (tuple, list)) else batch

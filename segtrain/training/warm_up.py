"""A pre-started worker builds and traces its run's model while it waits for its turn (`warm_up`)."""

from __future__ import annotations

import time

from segtrain.state import model_state
from segtrain.training.segment import ProcessContext, seed_everything


def warm_up(ctx: ProcessContext, fresh: bool = False) -> float:
    """Build the model and train it one step while this worker waits for its checkpoint; return seconds.

    A fresh process traces the train step (and its first kernels) in its first
    batch: 0.5-1.5 s per boundary on a CPU, on the critical path. A pre-started
    worker does it ahead, while the previous segment still trains, and then
    loads the checkpoint into this model: that overwrites everything the step
    changed (weights, optimizer variables and iterations, seed states — the
    fingerprint check proves it) while the traced functions stay. Never where an
    accelerator may be (the caller only calls it once the data is loaded, which
    is deferred there), nor for a script's own `train_epoch()`.

    `fresh`: a new run (a sweep's next trial, cv's next fold), with no checkpoint to load. The
    model is built as the run's first segment builds it (seeded the same way),
    and its state before the step is kept (`model_state.FreshState`) and set
    back at the take-over. Where the step made state that cannot be set back,
    or the model has optimizers of its own, the run builds its own model.
    """
    if ctx.script.train_epoch is not None:
        return 0.0
    t0 = time.perf_counter()
    data = ctx.data
    kwargs = dict(
        data.fit_kwargs, epochs=1, steps_per_epoch=1, shuffle=False, verbose=0, validation_data=data.validation
    )
    if data.validation is not None:
        kwargs["validation_steps"] = 1
    with ctx.replicas.scope():
        if fresh:
            seed_everything(ctx.cfg)  # as `_train` seeds a new run's model
        model = ctx.script.build_model(ctx.cfg.debug)
        if fresh and model_state.own_optimizers(model):
            return time.perf_counter() - t0  # their variables come with the first step: the run builds its own
        model_state.create_fit_variables(model, ctx.first_batch)  # one trace of the step, not two
        before = model_state.FreshState.take(model) if fresh else None
        model.fit(data.train.fit_input(0, 1), **kwargs)
    if before is not None and not before.intact(model):
        return time.perf_counter() - t0  # traced for nothing: the take-over builds the run's model itself
    ctx.warm_model, ctx.warm_fresh = model, before
    return time.perf_counter() - t0

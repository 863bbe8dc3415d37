"""Training state that no Keras format saves, and the check that a reload is whole.

* RNG: every `SeedGenerator` state (Dropout, noise, a custom layer's own). Keras
  lists them in `model.variables` but not in `model.weights`, and no format
  saves them; without them a reloaded Dropout draws other masks. And the
  backend's global generator where Keras draws from it (torch's unseeded
  Dropout).
* Metric state, for a resume in the middle of an epoch.
* Variables that `fit` would create in its first traced step, created ahead
  (`create_fit_variables`).
* A fingerprint (CRC-32) of every optimizer variable and weight, recorded at
  save and compared after load: Keras' loader skips mismatched optimizer
  variables with only a warning, and that must be an error here.
"""

from __future__ import annotations

import contextlib
import random
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from segtrain import backends
from segtrain.errors import CheckpointError

# The variables' total count of values from which `fingerprint` sums in threads (8M: 32 MB in float32). Measured on
# 2 cores: 0.1 MB (examples/spirals.py with Adam) 1.2 ms in this thread against 6 ms with a pool of 4 (22 ms beside a
# busy spare); 9.5 MB 4 ms against 7.
THREADS_FROM_VALUES = 8 << 20


def _weight_ids(model: Any) -> set[int]:
    return {id(v) for v in model.weights}


def seed_states(model: Any) -> list[dict[str, Any]]:
    """The state of every SeedGenerator in `model`, in a stable order."""
    ids = _weight_ids(model)
    return [{"path": v.path, "value": np.asarray(v.numpy()).tolist()} for v in model.variables if id(v) not in ids]


def restore_seed_states(model: Any, saved: list[dict[str, Any]]) -> None:
    ids = _weight_ids(model)
    current = [v for v in model.variables if id(v) not in ids]
    if len(current) != len(saved):
        raise CheckpointError(
            f"The model has {len(current)} random-seed states but the checkpoint holds {len(saved)}: "
            "the model's architecture changed since the checkpoint was written."
        )
    for var, entry in zip(current, saved, strict=True):
        value = np.asarray(entry["value"], dtype=var.dtype)
        if tuple(value.shape) != tuple(var.shape):
            raise CheckpointError(f"Seed state {entry['path']} has shape {value.shape}, expected {var.shape}.")
        var.assign(value)


def global_rng_state() -> dict[str, str] | None:
    """The backend's global generator, where unseeded ops draw from one (`Backend.global_rng_state`)."""
    backend = backends.current()
    state = backend.global_rng_state()
    return None if state is None else {"backend": backend.name, "state": state}


def restore_global_rng_state(saved: dict[str, str] | None) -> None:
    """Set the backend's global generator back, right before training goes on (same backend only)."""
    backend = backends.current()
    if saved is not None and saved.get("backend") == backend.name:
        backend.set_global_rng_state(saved["state"])


def metric_states(model: Any) -> list[list]:
    return [np.asarray(v.numpy()).tolist() for v in model.metrics_variables]


def restore_metric_states(model: Any, saved: list[list]) -> None:
    variables = model.metrics_variables
    if len(variables) != len(saved):
        raise CheckpointError(f"The model has {len(variables)} metric variables but the checkpoint holds {len(saved)}.")
    for var, value in zip(variables, saved, strict=True):
        var.assign(np.asarray(value, dtype=var.dtype))


def _crc(var: Any) -> int:
    return zlib.crc32(np.ascontiguousarray(var.numpy()).view(np.uint8).ravel().data)


def _checksums(variables: list, mapper: Callable) -> list[list]:
    return [[v.path, crc] for v, crc in zip(variables, mapper(_crc, variables), strict=True)]


def _values(var: Any) -> int:
    return int(np.prod(var.shape, dtype=np.int64))


def own_optimizers(model: Any) -> dict[str, Any]:
    """The optimizers a model holds as attributes of its own besides `model.optimizer`, by attribute name.

    A model with its own `compile(d_optimizer, g_optimizer, loss_fn)` (keras.io's
    GANs) keeps them so; Keras' loaders and `model.optimizer` know nothing of them.
    """
    import keras

    main = getattr(model, "optimizer", None)
    return {
        name: value
        for name, value in sorted(vars(model).items())
        if isinstance(value, keras.optimizers.Optimizer) and value is not main and not name.startswith("_")
    }


def create_fit_variables(model: Any, sample_batch: Callable[[], tuple]) -> None:
    """Create, before `fit`, every variable its first step would: the model's, its compiled metrics' and loss's,
    and its optimizer's, all zeros but the model's (which a load then fills).

    On TensorFlow, Keras creates them inside the first trace of the train step
    (it creates them ahead only under a distribution strategy, and always on
    JAX), and a `tf.function` whose first trace creates variables is traced a
    second time: created ahead, the step traces once (build and first step of
    bench/workloads/tiny.py's model: 0.51 s -> 0.27 s). This is Keras' own
    `_symbolic_build`, which runs no step. It is called only where a load
    overwrites what it made: after a load (the model is built, so only zeros
    are made), and on a spare's warm-up model, which a checkpoint then fills.
    `sample_batch()` gives `(x, y, sample_weight)`, read only where something
    is missing. Skipped where this Keras has no such method, and for a model
    with optimizers of its own, whose `train_step` creates what it needs.
    """
    build = getattr(model, "_symbolic_build", None)
    if build is None or own_optimizers(model):
        return
    metrics, loss = getattr(model, "_compile_metrics", None), getattr(model, "_compile_loss", None)
    optimizer = getattr(model, "optimizer", None)
    if model.built and all(p is None or p.built for p in (metrics, loss, optimizer)):
        return
    build(data_batch=sample_batch())


def fingerprint(model: Any) -> dict[str, Any]:
    """Iterations and a checksum per variable of every optimizer, and per weight.

    `model.optimizer`'s are at the top (as checkpoints have always held them);
    the model's own further optimizers (`own_optimizers`) under "optimizers".
    zlib releases the GIL while it sums, so threads spread a large model's
    checksums over the cores, which are idle at a boundary; below
    `THREADS_FROM_VALUES` starting them costs more than they save.
    """
    opt = getattr(model, "optimizer", None)
    own = own_optimizers(model)
    groups = [model.weights, [] if opt is None else opt.variables, *(o.variables for o in own.values())]
    threaded = sum(_values(v) for group in groups for v in group) >= THREADS_FROM_VALUES
    with ThreadPoolExecutor(max_workers=4) if threaded else contextlib.nullcontext() as pool:
        mapper = map if pool is None else pool.map
        found: dict[str, Any] = {
            "iterations": 0 if opt is None else int(opt.iterations.numpy()),
            "optimizer": [] if opt is None else _checksums(opt.variables, mapper),
            "weights": _checksums(model.weights, mapper),
        }
        if own:
            found["optimizers"] = {
                name: {"iterations": int(o.iterations.numpy()), "variables": _checksums(o.variables, mapper)}
                for name, o in own.items()
            }
        return found


def verify(model: Any, expected: dict[str, Any], where: str) -> None:
    """Raise CheckpointError unless `model` holds exactly what was saved: weights and every optimizer's state."""
    found = fingerprint(model)
    parts = [("optimizer", found, expected)]
    for name, saved in expected.get("optimizers", {}).items():
        if name not in found.get("optimizers", {}):
            raise CheckpointError(
                f"{where}: the model has no optimizer `{name}` after loading, but was saved with one: "
                "its compile() did not run (a model with its own compile() is rebuilt by its script)."
            )
        parts.append((name, found["optimizers"][name], saved))
    for name, got, want in parts:
        if got["iterations"] != want["iterations"]:
            raise CheckpointError(
                f"{where}: {name}.iterations is {got['iterations']} after loading, "
                f"{want['iterations']} when saved: the optimizer state did not load."
            )
    checks = [
        ("weights", found["weights"], expected["weights"]),
        ("optimizer", found["optimizer"], expected["optimizer"]),
    ]
    checks += [(name, got["variables"], want["variables"]) for name, got, want in parts[1:]]
    for kind, got_list, want_list in checks:
        if len(got_list) != len(want_list):
            raise CheckpointError(
                f"{where}: {len(got_list)} {kind} variables after loading, {len(want_list)} when saved."
            )
        for (path, crc), (saved_path, saved_crc) in zip(got_list, want_list, strict=True):
            if crc != saved_crc:
                raise CheckpointError(
                    f"{where}: {kind} variable {path} (saved as {saved_path}) did not load back "
                    "as saved. The checkpoint and the model do not match."
                )


def _stateful_variables(model: Any) -> list:
    """Every variable a train step may change: the model's (weights, seed states), its optimizer's, its metrics'."""
    optimizer = getattr(model, "optimizer", None)
    found: dict[int, Any] = {}
    for var in [*model.variables, *([] if optimizer is None else optimizer.variables), *model.metrics_variables]:
        found.setdefault(id(var), var)
    return list(found.values())


def _global_seed_generator() -> Any:
    """Keras' global SeedGenerator (what `keras.random` draws from without a seed), or None where none exists yet."""
    from keras.src.backend.common import global_state  # private: Keras offers no reader of it

    return global_state.get_global_attribute("global_seed_generator")


@dataclass
class FreshState:
    """A new model's whole state before its first step, kept across a warm-up step that traces that step.

    A sweep's next trial is built and traced by the worker that will train it
    while the current trial trains; a new run has no checkpoint to load over
    what the warm-up step changed, so `take` keeps every variable a step
    changes (the optimizer's and metrics' made ahead by `create_fit_variables`,
    all at their initial values) and the generators that a new run's first step
    would start from: Python's, NumPy's, the backend's global one. `put_back`
    sets them all back, right before training, so the run trains as if it had
    been built there. Where the warm-up made state that cannot be set back
    (`intact` says), the model is not used: the run builds its own.
    """

    values: list[Any]
    python: Any
    numpy: Any
    backend: dict[str, str] | None
    keras_generator: Any  # Keras' global SeedGenerator at `take` (None: there was none)
    keras_generator_state: Any

    @classmethod
    def take(cls, model: Any) -> FreshState:
        generator = _global_seed_generator()
        return cls(
            values=[np.array(v.numpy()) for v in _stateful_variables(model)],
            python=random.getstate(),
            numpy=np.random.get_state(),
            backend=global_rng_state(),
            keras_generator=generator,
            keras_generator_state=None if generator is None else np.array(generator.state.numpy()),
        )

    def intact(self, model: Any) -> bool:
        """Whether `put_back` can set everything back after the warm-up step: it made no variable and no generator
        (Keras' global SeedGenerator, created by a step that draws without a seed, which its trace now holds)."""
        generator = _global_seed_generator()
        made = generator is not None and generator is not self.keras_generator
        return not made and len(_stateful_variables(model)) == len(self.values)

    def put_back(self, model: Any) -> None:
        """Set `model` and the generators back to `take`'s state (after seeding, which drops Keras' generator)."""
        for var, value in zip(_stateful_variables(model), self.values, strict=True):
            var.assign(value)
        if self.keras_generator is not None:
            from keras.src.backend.common import global_state

            global_state.set_global_attribute("global_seed_generator", self.keras_generator)
            self.keras_generator.state.assign(self.keras_generator_state)
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        restore_global_rng_state(self.backend)

"""An ordinary training script, run from the top in a worker: its `model.fit(...)` calls train the run's segments.

`segtrain run train.py` runs the script as `__main__` in every worker, with its
own arguments, the way `python train.py` would. While it runs, `keras.Model.fit`
is segtrain's: each call to `fit` hands segtrain its model and its arguments
(`InterceptedFit`), which become the script contract of `segtrain fit`
(`InterceptedFit.as_script`): `build_model()` returns the script's model, `load_data()`
its data, `callbacks()` its callbacks, and the other arguments are `fit_kwargs`.
The worker then trains its segment into that very model (restored from the
run's checkpoint) and, where the call's training goes on, ends inside `fit`.
The worker of a call's last segment returns that call's whole `History` from
`fit`, and the script goes on: evaluate, save, print, or call `fit` again.

Each `fit` call is a stage of the run, with a run directory of its own
(`RunPaths.stage`): fine-tuning after training a head is two stages. A worker
that reaches a stage already trained gets its model and history back at once.
What the script does before the stage it trains runs again in every worker.
"""

from __future__ import annotations

import inspect
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from segtrain.errors import ScriptError
from segtrain.training.data import is_arrays
from segtrain.training.script import TrainingScript, describe_failure
from segtrain.training.sources import is_stream, kind

# `fit` arguments that become the worker's own; the rest are passed on as `fit_kwargs`.
_DATA = ("x", "y", "validation_data")
_OWN = ("epochs", "callbacks", "initial_epoch")  # the run counts its epochs from 0; Keras from initial_epoch
# Keras' defaults, left out of `fit_kwargs`: they mean what segtrain does anyway.
_DEFAULTS = {"validation_split": 0.0, "shuffle": True, "validation_freq": 1, "verbose": "auto"}


@dataclass
class InterceptedFit:
    """The script's call to `model.fit`: the model, and every argument by Keras' name."""

    path: Path
    model: Any
    arguments: dict[str, Any]
    stage: int = 1  # which of the script's `fit` calls this is (1-based)

    @classmethod
    def bind(
        cls, path: Path, fit: Callable[..., Any], model: Any, args: tuple, kwargs: dict[str, Any], stage: int = 1
    ) -> InterceptedFit:
        """The call `model.fit(*args, **kwargs)`, its arguments named as Keras' own `fit` names them."""
        try:
            bound = inspect.signature(fit).bind(model, *args, **kwargs)
        except TypeError as e:
            raise ScriptError(f"{path}: model.fit(...) was called with arguments Keras does not take: {e}") from e
        bound.apply_defaults()
        arguments = {name: value for name, value in bound.arguments.items() if name != "self"}
        arguments.update(arguments.pop("kwargs", None) or {})
        call = cls(path, model, arguments, stage)
        call._check()
        return call

    def _check(self) -> None:
        if not getattr(self.model, "compiled", False):
            raise ScriptError(f"{self.path}: model.fit(...) was called on a model that is not compiled.")
        epochs = self.arguments.get("epochs")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ScriptError(f"{self.path}: model.fit(epochs=...) must be a positive integer. Received: {epochs!r}")
        initial = self.arguments.get("initial_epoch") or 0
        if isinstance(initial, bool) or not isinstance(initial, int) or not 0 <= initial < epochs:
            raise ScriptError(
                f"{self.path}: model.fit(initial_epoch={initial!r}, epochs={epochs}) trains no epoch: initial_epoch "
                "must be an integer from 0 to epochs - 1."
            )
        x = self.arguments.get("x")
        if x is None:
            raise ScriptError(f"{self.path}: model.fit(...) was called without training data (x).")
        if is_stream(x) and self.arguments.get("y") is not None:
            raise ScriptError(
                f"{self.path}: model.fit(x, y=...): x is {kind(x)}, which yields its own targets, and Keras "
                "takes no y with it. Leave y out."
            )

    @property
    def initial_epoch(self) -> int:
        """Keras' index of the call's first epoch (`fit(initial_epoch=...)`: KerasTuner's Hyperband sets it)."""
        return int(self.arguments.get("initial_epoch") or 0)

    @property
    def epochs(self) -> int:
        """How many epochs the call trains: its stage's (`epochs - initial_epoch`, as Keras counts them)."""
        return int(self.arguments["epochs"]) - self.initial_epoch

    @property
    def callbacks(self) -> list[Any]:
        return list(self.arguments.get("callbacks") or [])

    def data(self) -> Any:
        """The data as `load_data()` returns it: (x, y), ((x, y), validation), a dataset (tf.data, a PyDataset, a
        generator), or (dataset, validation). Messages about it speak of the `fit` call (`training.sources.Source`)."""
        x, y, validation = (self.arguments.get(name) for name in _DATA)
        train = (x, y) if y is not None or is_arrays(x) else x
        if validation is None:
            return train
        if isinstance(validation, list):
            validation = tuple(validation)
        return (train, validation)

    def fit_kwargs(self) -> dict[str, Any]:
        """Every other argument that is not Keras' default."""
        return {
            name: value
            for name, value in self.arguments.items()
            if name not in _DATA + _OWN and value is not None and not _is_default(name, value)
        }

    def as_script(self) -> TrainingScript:
        """The call as a training script: its model, its data, its callbacks, its other arguments."""
        module = ModuleType(f"segtrain_launched_{self.path.stem}")
        contract = {
            "build_model": lambda: self.model,
            "load_data": self.data,
            "callbacks": lambda: self.callbacks,
            "fit_kwargs": self.fit_kwargs(),
        }
        module.__dict__.update(contract)
        return TrainingScript(self.path, module, initial_epoch=self.initial_epoch)


def _is_default(name: str, value: Any) -> bool:
    default = _DEFAULTS.get(name, object())
    return type(value) is type(default) and value == default


def history(model: Any, logs: dict[str, list[float]], steps: int, initial_epoch: int = 0) -> Any:
    """A `keras.callbacks.History` of the whole run, as `fit` returns it (and leaves in `model.history`): its
    epochs counted from `initial_epoch`, as Keras counts them."""
    import keras

    result = keras.callbacks.History()
    result.set_model(model)
    epochs = max((len(values) for values in logs.values()), default=0)
    result.epoch = list(range(initial_epoch, initial_epoch + epochs))
    result.history = {name: list(values) for name, values in logs.items()}
    result.params = {"verbose": 0, "epochs": initial_epoch + epochs, "steps": steps}
    model.history = result
    return result


def run_script(path: Path, args: tuple[str, ...], on_fit: Callable[[InterceptedFit], Any], debug: bool = False) -> int:
    """Run the script at `path` as `__main__` with `args`; each `model.fit(...)` call returns `on_fit(call)`.

    Returns how many times it called `fit` (none: see `no_fit`). Whatever the
    script raises becomes a ScriptError that names it; `sys.exit(0)` is a
    normal end.
    """
    import keras

    original = keras.Model.fit
    calls = 0

    def fit(model: Any, *fit_args: Any, **fit_kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        call = InterceptedFit.bind(path, original, model, fit_args, fit_kwargs, stage=calls)
        keras.Model.fit = original  # segtrain's own training calls Keras' fit
        try:
            return on_fit(call)
        finally:
            keras.Model.fit = fit

    keras.Model.fit = fit
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):
            raise ScriptError(f"{path}: the script exited with {e.code!r}.") from None
    except ScriptError:
        raise
    except Exception as e:
        raise ScriptError(describe_failure(path, "running the script", e, debug)) from e
    finally:
        keras.Model.fit = original
    return calls


def no_fit(path: Path) -> ScriptError:
    """A script that ran to its end without calling `fit` (nor `study.optimize`)."""
    return ScriptError(
        f"{path}: ran to its end without calling model.fit(...). `segtrain run` trains a script's "
        "model.fit(...) calls in segments; a script with a custom training loop defines "
        "train_epoch(model, data, epoch) and runs with `segtrain fit`."
    )

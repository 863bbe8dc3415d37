"""The training script: a plain Python file that defines the model and the data.

Contract:

* `build_model()` returns a compiled `keras.Model` (Sequential, functional or
  subclassed). Custom classes are registered with
  `keras.saving.register_keras_serializable` or listed in `custom_objects`.
* `load_data()` returns `(x, y)`, `((x, y), (x_val, y_val))`, a
  `tf.data.Dataset` or `(train_ds, val_ds)`; x and y may be arrays or dicts of
  arrays.
* optional: `callbacks()` returns a list of new Keras callbacks;
  `fit_kwargs` is a dict passed on to `fit` (batch_size, class_weight,
  steps_per_epoch, shuffle, validation_split, ...), meaning what Keras means:
  `shuffle=False` trains every epoch in the given order, `validation_split`
  holds out the last fraction before any shuffling; `custom_objects` is a dict.
* `build_model`, `load_data` and `callbacks` may take one argument, the
  run's params dict (`segtrain fit --param NAME=VALUE`, or a sweep trial's);
  functions that take none keep working.
* optional: `search_space(trial) -> dict` defines a hyperparameter space with
  Optuna's `trial.suggest_*` and returns the trial's params (`segtrain sweep`).
* optional: `train_epoch(model, data, epoch)` trains one epoch its own way
  (a custom loop, TF1-style graph code) and returns a dict of logs; segtrain
  calls it instead of `fit` and still owns the loop, the checkpoints, the
  boundaries and the telemetry. `data` is what `load_data()` returned.

Every breach of the contract raises `ScriptError` naming the file, the function
and what to fix.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from segtrain.errors import ScriptError
from segtrain.training import references

# fit() arguments segtrain sets itself, and what a script writes instead.
_RESERVED_FIT_KWARGS = {
    "x": "return the data from load_data()",
    "y": "return the data from load_data()",
    "validation_data": "return ((x, y), (x_val, y_val)) or (train_ds, val_ds) from load_data()",
    "epochs": "use --epochs (segtrain.fit(epochs=...))",
    "initial_epoch": "segtrain resumes at the right epoch itself; leave it out",
    "callbacks": "define callbacks() returning the list",
}


@dataclass
class TrainingScript:
    """A training script imported by path."""

    path: Path
    module: ModuleType
    params: dict[str, Any] = field(default_factory=dict)  # passed to the functions that take an argument
    initial_epoch: int = 0  # Keras' index of the run's epoch 0 (a launched `fit(initial_epoch=...)`)

    @classmethod
    def load(
        cls,
        path: Path | str,
        debug: bool = False,
        params: dict[str, Any] | None = None,
        *,
        module: str | None = None,
        functions: dict[str, str] | None = None,
    ) -> TrainingScript:
        """Import the script at `path` (its folder goes first on `sys.path`); its functions will get `params`.

        `module`: import the module of that dotted name instead (`segtrain fit mypkg.train`); `path` is its
        file. `functions`: the contract's functions by reference (`segtrain.fit(build_model=fn, ...)`, see
        `segtrain.training.references`); `path` is the file of `build_model`.
        """
        path = Path(path).resolve()
        if functions:
            namespace = ModuleType(f"segtrain_functions_{path.stem}")
            namespace.__dict__.update({name: references.resolve(ref, debug) for name, ref in functions.items()})
            script = cls(path, namespace, dict(params or {}))
        elif module:
            script = cls(path, references.import_module(module, debug), dict(params or {}))
        else:
            if not path.is_file():
                raise ScriptError(f"Training script not found: {path}")
            if path.suffix != ".py":
                raise ScriptError(f"The training script must be a .py file. Received: {path}")
            script = cls(path, references.import_module(str(path), debug), dict(params or {}))
        script._check_contract()
        return script

    def _check_contract(self) -> None:
        for name in ("build_model", "load_data"):
            if not callable(getattr(self.module, name, None)):
                raise ScriptError(
                    f"{self.path}: defines no function `{name}()`. A training script defines "
                    "`build_model()` (returns a compiled keras.Model) and `load_data()` "
                    "(returns the training data)."
                )
        if hasattr(self.module, "callbacks") and not callable(self.module.callbacks):
            raise ScriptError(f"{self.path}: `callbacks` must be a function returning a list of callbacks.")
        kwargs = self.fit_kwargs
        if not isinstance(kwargs, dict):
            raise ScriptError(f"{self.path}: `fit_kwargs` must be a dict. Received: {type(kwargs).__name__}")
        check_fit_kwargs(kwargs, f"{self.path}: `fit_kwargs`")
        if not isinstance(self.custom_objects, dict):
            raise ScriptError(f"{self.path}: `custom_objects` must be a dict of name -> class or function.")

    @property
    def train_epoch(self) -> Callable[..., Any] | None:
        fn = getattr(self.module, "train_epoch", None)
        return fn if callable(fn) else None

    def call_train_epoch(self, model: Any, data: Any, epoch: int, debug: bool = False) -> dict[str, float]:
        """One epoch of the script's own training; its logs, checked."""
        train_epoch = self.train_epoch
        if train_epoch is None:
            raise ScriptError(f"{self.path}: defines no function `train_epoch(model, data, epoch)`.")
        try:
            logs = train_epoch(model, data, epoch)
        except Exception as e:
            raise ScriptError(
                describe_failure(self.path, f"`train_epoch(model, data, epoch={epoch})`", e, debug)
            ) from e
        if logs is None:
            return {}
        if not isinstance(logs, dict):
            raise ScriptError(
                f"{self.path}: `train_epoch()` must return a dict of logs such as {{'loss': 0.1}} (or None). "
                f"Received: {type(logs).__name__}"
            )
        return logs

    @property
    def fit_kwargs(self) -> dict[str, Any]:
        return getattr(self.module, "fit_kwargs", {}) or {}

    @property
    def custom_objects(self) -> dict[str, Any]:
        return getattr(self.module, "custom_objects", {}) or {}

    @property
    def search_space(self) -> Callable[[Any], dict[str, Any]] | None:
        """`search_space(trial) -> dict`: the script's hyperparameter space, for `segtrain sweep`."""
        fn = getattr(self.module, "search_space", None)
        return fn if callable(fn) else None

    def call(self, name: str, debug: bool = False) -> Any:
        """Call the script's function `name` (with the params, if it takes an argument); failures become ScriptError."""
        fn: Callable[..., Any] = getattr(self.module, name)
        takes_params = _takes_an_argument(fn)
        try:
            return fn(self.params) if takes_params else fn()
        except Exception as e:
            where = f"`{name}(params={self.params!r})`" if takes_params else f"`{name}()`"
            raise ScriptError(describe_failure(self.path, where, e, debug)) from e

    def build_model(self, debug: bool = False) -> Any:
        import keras

        model = self.call("build_model", debug)
        if not isinstance(model, keras.Model):
            raise ScriptError(
                f"{self.path}: `build_model()` must return a keras.Model. Received: {type(model).__name__}"
            )
        if not getattr(model, "compiled", False) or model.optimizer is None:
            raise ScriptError(
                f"{self.path}: `build_model()` returned a model that is not compiled. "
                "Call model.compile(optimizer=..., loss=...) before returning it."
            )
        return model

    def callbacks(self, debug: bool = False) -> list:
        import keras

        if not hasattr(self.module, "callbacks"):
            return []
        cbs = self.call("callbacks", debug)
        if not isinstance(cbs, (list, tuple)) or not all(isinstance(c, keras.callbacks.Callback) for c in cbs):
            raise ScriptError(f"{self.path}: `callbacks()` must return a list of keras.callbacks.Callback instances.")
        return list(cbs)


def check_fit_kwargs(kwargs: dict[str, Any], where: str) -> None:
    """Refuse the `fit` arguments segtrain sets itself, saying what to write instead."""
    reserved = sorted(set(_RESERVED_FIT_KWARGS) & set(kwargs))
    if reserved:
        instead = "; ".join(f"for {name}: {_RESERVED_FIT_KWARGS[name]}" for name in reserved)
        raise ScriptError(f"{where} may not set {', '.join(reserved)}, which segtrain sets: {instead}.")


def _takes_an_argument(fn: Callable[..., Any]) -> bool:
    """Whether `fn` takes a positional argument (the params dict): `build_model(params)` rather than `build_model()`."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    return any(p.kind in positional for p in parameters)


def describe_failure(path: Path, where: str, error: BaseException, debug: bool) -> str:
    message = f"{path}: {where} failed: {type(error).__name__}: {error}"
    if debug:
        message += "\n" + "".join(traceback.format_exception(error))
    else:
        message += "\n(run with --debug for the traceback)"
    return message

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
  steps_per_epoch, ...); `custom_objects` is a dict.
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

import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from segtrain.errors import ScriptError

# fit() arguments segtrain sets itself; a script may not pass them.
_RESERVED_FIT_KWARGS = frozenset(
    {"x", "y", "epochs", "initial_epoch", "callbacks", "shuffle", "validation_data", "validation_split", "verbose"}
)


@dataclass
class TrainingScript:
    """A training script imported by path."""

    path: Path
    module: ModuleType
    params: dict[str, Any] = field(default_factory=dict)  # passed to the functions that take an argument

    @classmethod
    def load(cls, path: Path | str, debug: bool = False, params: dict[str, Any] | None = None) -> TrainingScript:
        """Import the script at `path` (its folder goes first on `sys.path`); its functions will get `params`."""
        path = Path(path).resolve()
        if not path.is_file():
            raise ScriptError(f"Training script not found: {path}")
        if path.suffix != ".py":
            raise ScriptError(f"The training script must be a .py file. Received: {path}")
        name = f"segtrain_script_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ScriptError(f"{path}: Python cannot import this file as a module.")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.parent))
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except SyntaxError as e:
            raise ScriptError(f"{path}: syntax error on line {e.lineno}: {e.msg}. Fix the script and run again.") from e
        except Exception as e:
            raise ScriptError(_describe(path, "importing the script", e, debug)) from e
        script = cls(path, module, dict(params or {}))
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
        reserved = sorted(_RESERVED_FIT_KWARGS & set(kwargs))
        if reserved:
            raise ScriptError(
                f"{self.path}: `fit_kwargs` may not set {', '.join(reserved)}: segtrain sets "
                "them (use --epochs, load_data() and callbacks())."
            )
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
            raise ScriptError(_describe(self.path, f"`train_epoch(model, data, epoch={epoch})`", e, debug)) from e
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
            raise ScriptError(_describe(self.path, where, e, debug)) from e

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


def _describe(path: Path, where: str, error: BaseException, debug: bool) -> str:
    message = f"{path}: {where} failed: {type(error).__name__}: {error}"
    if debug:
        message += "\n" + "".join(traceback.format_exception(error))
    else:
        message += "\n(run with --debug for the traceback)"
    return message

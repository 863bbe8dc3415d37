"""Code by name: how `segtrain.fit(build_model=fn, ...)` and `segtrain fit mypkg.train` reach a worker.

A worker is a fresh interpreter, so it cannot be handed a function object: it
imports it again, by reference. A reference is `MODULE:QUALNAME`
(`mypkg.train:build_model`), or `PATH:QUALNAME` for a function of the main
script (`/home/me/train.py:build_model`), which is imported by path, under
another name than `__main__`, so its `if __name__ == "__main__":` block does not
run again. A lambda, or a function defined inside another, has no name for
a worker to import it by, and is refused with what to do instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from segtrain.errors import ConfigError, ScriptError

IN_WORKER = "SEGTRAIN_IN_WORKER"  # set in every worker: segtrain called from a worker's import is a mistake
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_module_name(text: str) -> bool:
    """Whether `text` reads as a dotted module name (`mypkg.train`) rather than a path (`train.py`)."""
    return bool(_DOTTED.match(text)) and not text.endswith(".py")


@dataclass(frozen=True)
class Source:
    """Where a run's training code comes from: a file, a module by name, or functions by reference."""

    path: Path  # the file: the run's script, whose SHA-256 the manifest keeps and whose copy the run keeps
    module: str | None = None
    functions: dict[str, str] = field(default_factory=dict)


def locate(script: str | Path | None, **functions: Callable[..., Any] | None) -> Source:
    """The source that `segtrain.fit(script, build_model=..., ...)` names; a ConfigError where it names none, or two."""
    if os.environ.get(IN_WORKER):
        raise ScriptError(
            "segtrain was called again from inside one of its own workers, which import the main script: put the "
            'call under `if __name__ == "__main__":`.'
        )
    refs = {name: reference(fn, name) for name, fn in functions.items() if fn is not None}
    if refs:
        if script is not None:
            raise ConfigError("Give either a script or its functions (build_model=, load_data=, ...), not both.")
        missing = [name for name in ("build_model", "load_data") if name not in refs]
        if missing:
            raise ConfigError(f"Give {' and '.join(f'{m}=' for m in missing)} too: a run needs a model and its data.")
        return Source(source_file(refs["build_model"]), functions=refs)
    if script is None:
        raise ConfigError("Give a training script (a path, or a module name), or build_model= and load_data=.")
    text = str(script)
    if not Path(text).exists() and is_module_name(text):
        return Source(module_file(text), module=text)
    return Source(Path(script))


def module_file(name: str) -> Path:
    """The file of the module `name`, found as `python -m` would (the working directory first)."""
    _importable_from_cwd()
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a parent package is missing
        spec = None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ConfigError(
            f"No Python module named {name!r} here (from {os.getcwd()}). Give a path to a .py file, or run "
            "from the folder that holds the package, or install it."
        )
    return Path(spec.origin).resolve()


def reference(fn: Any, role: str) -> str:
    """`fn`'s reference, for the workers to import it by; a ConfigError where it has none."""
    if not callable(fn):
        raise ConfigError(f"{role} must be a function. Received: {type(fn).__name__}")
    qualname = getattr(fn, "__qualname__", "")
    module = getattr(fn, "__module__", None)
    if "<lambda>" in qualname or "<locals>" in qualname or not qualname or module is None:
        what = "a lambda" if "<lambda>" in qualname else "a function defined inside another function"
        raise ConfigError(
            f"{role}={qualname or repr(fn)} is {what}: segtrain's workers are fresh processes that import "
            f"{role} by its name, so define it with `def` at the top level of a module (or of your script)."
        )
    if module == "__main__":
        main_file = getattr(sys.modules["__main__"], "__file__", None)
        if not main_file:
            raise ConfigError(
                f"{role}={qualname} is defined in an interactive session or notebook, which a worker cannot import: "
                "put it in a .py file and import it from there."
            )
        return f"{Path(main_file).resolve()}:{qualname}"
    return f"{module}:{qualname}"


def source_file(ref: str) -> Path:
    """The file that holds the referenced function: the run's script, for its SHA-256 and its kept copy."""
    target = ref.rpartition(":")[0]
    return Path(target) if target.endswith(".py") else module_file(target)


def resolve(ref: str, debug: bool = False) -> Callable[..., Any]:
    """Import the function that `ref` names."""
    target, _, qualname = ref.rpartition(":")
    module = import_module(target, debug)
    obj: Any = module
    try:
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ScriptError(f"{target} has no {qualname}: it was renamed or removed since the run began.") from None
    return obj


def import_module(target: str, debug: bool = False) -> ModuleType:
    """A module by name, or a script by path (under the name `segtrain_script_<stem>`, once per process)."""
    from segtrain.training.script import describe_failure  # deferred: script imports this module (a cycle)

    if not target.endswith(".py"):
        _importable_from_cwd()
        try:
            return importlib.import_module(target)
        except Exception as e:
            raise ScriptError(describe_failure(Path(target), "importing the module", e, debug)) from e
    path = Path(target).resolve()
    name = f"segtrain_script_{path.stem}"
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "")).resolve() == path:
        return loaded
    if not path.is_file():
        raise ScriptError(f"Training script not found: {path}")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ScriptError(f"{path}: Python cannot import this file as a module.")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        del sys.modules[name]
        raise ScriptError(f"{path}: syntax error on line {e.lineno}: {e.msg}. Fix the script and run again.") from e
    except Exception as e:
        del sys.modules[name]
        raise ScriptError(describe_failure(path, "importing the script", e, debug)) from e
    return module


def import_failure(error: ScriptError) -> bool:
    """Whether `error` says that code by name was not found (rather than found and broken)."""
    return isinstance(error.__cause__, ModuleNotFoundError) or "has no" in str(error)


def on_file(functions: dict[str, str], path: Path) -> dict[str, str] | None:
    """`functions` re-pointed at `path` (the run's copy of their file), where they all live in one module; else None."""
    if len({ref.rpartition(":")[0] for ref in functions.values()}) != 1:
        return None
    return {name: f"{path}:{ref.rpartition(':')[2]}" for name, ref in functions.items()}


def _importable_from_cwd() -> None:
    """Modules of the working directory import, as under `python -m` (a console script's path lacks it)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)

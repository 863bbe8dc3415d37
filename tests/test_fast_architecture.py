"""The package's shape, checked: small modules, imports only down the layers, no import cycles, backend
specifics only in segtrain/backends."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SCRIPTS

PACKAGE = Path(__file__).resolve().parent.parent / "segtrain"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


# The layers, top to bottom: a package may import itself, the packages below it, and the leaf modules.
# Every import counts, module-level or deferred into a function (a deferred one keeps a framework out of a
# light process; it does not turn the dependency around). `segtrain` is the package's __init__ (the API).
ALLOWED = {
    "cli": {"api", "search", "runs", "worker", "training", "config", "telemetry", "state", "backends"},
    "api": {"search", "runs", "worker", "training", "config", "telemetry", "state", "backends"},
    "search": {"runs", "worker", "training", "config", "telemetry", "state", "backends"},
    "runs": {"worker", "training", "config", "telemetry", "state", "backends"},
    "worker": {"training", "config", "telemetry", "state", "backends"},
    "training": {"config", "telemetry", "state", "backends"},
    "config": {"telemetry", "state", "backends"},  # the options: read from the training layer up
    "telemetry": {"state", "backends"},
    "state": {"backends"},
    "backends": set(),
}
# Modules any layer may import: they import none of segtrain but each other.
LEAVES = {"paths", "errors", "outcomes", "options", "choices", "version"}


def _layer(module: str) -> str:
    """`segtrain.runs.loop` -> "runs", `segtrain.errors` -> "errors", `segtrain` (the API) -> "api"."""
    parts = module.split(".")
    if len(parts) == 1:
        return "api"
    return "cli" if parts[1] == "__main__" else parts[1]


def _imports(tree: ast.Module, module: str, modules: set[str], top_level: bool) -> list[tuple[int, str]]:
    """(line, segtrain module) of every import in `tree`, in functions too unless `top_level`."""
    nodes = tree.body if top_level else ast.walk(tree)
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package
                package = module.split(".")[: len(module.split(".")) - node.level]
                base = ".".join([*package, base] if base else package)
            # `from a import b` imports the module a.b where there is one, else a (for its name b)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        found += [(node.lineno, n) for n in names if n in modules]
    return found


def layer_violations(source: str, module: str, file: str, modules: set[str]) -> list[str]:
    """Imports in `source` (module `module`, at `file`) that go up the layers, or out of a leaf module."""
    here = _layer(module)
    found = []
    for line, name in _imports(ast.parse(source), module, modules, top_level=False):
        there = _layer(name)
        if there == here or there in LEAVES:
            continue
        if here in LEAVES or there not in ALLOWED[here]:
            what = "the leaf module" if here in LEAVES else "layer"
            found.append(f"{file}:{line}: {what} {here} imports {there} ({name}), against the layers")
    return found


def test_imports_go_down_the_layers_only():
    modules = _modules()
    assert {_layer(name) for name in modules} <= set(ALLOWED) | LEAVES, "a package missing from ALLOWED"
    found = [
        v
        for name, path in modules.items()
        for v in layer_violations(path.read_text(), name, str(path.relative_to(PACKAGE.parent)), set(modules))
    ]
    assert not found, "imports against the layers:\n" + "\n".join(found)


def test_the_layer_check_sees_an_import_deferred_into_a_function():
    modules = {"segtrain.state.checkpoint", "segtrain.runs.loop", "segtrain.paths", "segtrain.errors"}
    source = (
        "from segtrain.paths import RunPaths\n"
        "from segtrain.errors import ConfigError\n"
        "def latest():\n"
        "    from segtrain.runs import loop\n"
    )
    assert layer_violations(source, "segtrain.state.checkpoint", "state/checkpoint.py", modules) == [
        "state/checkpoint.py:4: layer state imports runs (segtrain.runs.loop), against the layers"
    ]
    leaf = "def f():\n    from segtrain.state import checkpoint\n"
    assert layer_violations(leaf, "segtrain.paths", "paths.py", modules) == [
        "paths.py:2: the leaf module paths imports state (segtrain.state.checkpoint), against the layers"
    ]
    assert layer_violations(source, "segtrain.runs.loop", "runs/loop.py", modules) == []


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_cycles():
    modules = _modules()
    graph = {
        name: {n for _, n in _imports(ast.parse(path.read_text()), name, set(modules), top_level=True)} - {name}
        for name, path in modules.items()
    }
    # A package imports its own submodules through its __init__ only when it says so; a cycle is a path back.
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_only_segtrain_backends_asks_which_backend_runs():
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for name, path in _modules().items()
        if not name.startswith("segtrain.backends") and "keras.backend.backend()" in path.read_text()
    ]
    assert not offenders, f"backend branches outside segtrain/backends: {offenders}"


@pytest.mark.slow
def test_the_parent_of_a_process_isolated_run_imports_no_backend(tmp_path):
    """In process isolation only workers train: the parent starts in a blink and holds no framework's memory.

    It writes the run's TensorBoard scalars too (`--tensorboard`), without TensorFlow or tensorboard.
    """
    code = (
        "import sys, segtrain\n"
        f"o = segtrain.fit({str(SCRIPTS / 'slow.py')!r}, epochs=2, segment=1, run_dir={str(tmp_path / 'r')!r}, "
        "progress=False, tensorboard=True)\n"
        "assert o.exit_code == 0, o.message\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch', 'tensorboard') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert list((tmp_path / "r" / "tensorboard" / "segtrain").glob("events.out.tfevents.*"))


# What a function may import where a module would be too heavy to import at the top: the frameworks and the
# libraries that only some commands need, so that `import segtrain`, `status` and the sweep's supervisor stay
# light (tests/test_fast_architecture.py::test_the_parent_of_a_process_isolated_run_imports_no_backend).
DEFERRABLE = {"tensorflow", "keras", "jax", "torch", "optuna", "sqlalchemy", "cmaes", "matplotlib", "rich", "tqdm"}


def deferred_import_faults(source: str, file: str) -> list[str]:
    """Function-level imports in `source` of a module not in DEFERRABLE, without a comment saying why."""
    tree = ast.parse(source)
    lines = source.splitlines()
    top = {id(node) for node in tree.body}
    top |= {id(n) for node in tree.body if isinstance(node, ast.If) for n in node.body}  # `if TYPE_CHECKING:`
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in top:
            continue
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        if "#" in lines[node.lineno - 1]:
            continue
        roots = sorted({name.split(".")[0] for name in names} - DEFERRABLE)
        found += [f"{file}:{node.lineno}: {r} imported in a function: at the top, or say why (#)" for r in roots]
    return found


def test_an_import_is_deferred_only_to_keep_something_heavy_out():
    found = [
        fault
        for path in _modules().values()
        for fault in deferred_import_faults(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    ]
    assert not found, "\n".join(found)
    source = "def f():\n    import io\n    from segtrain import api\n    import keras\n    import os  # a reason\n"
    assert deferred_import_faults(source, "m.py") == [
        "m.py:2: io imported in a function: at the top, or say why (#)",
        "m.py:3: segtrain imported in a function: at the top, or say why (#)",
    ]

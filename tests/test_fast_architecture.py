"""The package's shape, checked: small modules, no import cycles, backend specifics only in segtrain/backends."""

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


def _top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """segtrain modules that `path` imports when it is imported (not inside functions)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from a import b` imports the module a.b where there is one, else a (for its name b)
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names
            ]
        else:
            continue
        found |= {n for n in names if n in modules}
    return found


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _top_level_imports(path, set(modules)) - {name} for name, path in modules.items()}
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

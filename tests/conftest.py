"""Shared helpers: run the real `segtrain` command in a subprocess, check how it exited, read what it left.

Markers (declared in pyproject.toml, `--strict-markers`):

* `slow`: starts a training process (a `segtrain fit` subprocess or a worker);
* `docker`: the container tests (tests/test_container.py builds and runs the image with podman);
* `bench`: runs a benchmark;
* `jax`: needs the JAX backend.

`make test-fast` runs everything that is none of slow, docker and bench, in-process.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"
# TensorFlow, and JAX where the test extra installed it: `@pytest.mark.parametrize("backend", BACKENDS)`.
BACKENDS = [
    "tensorflow",
    pytest.param(
        "jax",
        marks=[
            pytest.mark.jax,
            pytest.mark.skipif(
                importlib.util.find_spec("jax") is None, reason="JAX is not installed (it comes with the test extra)"
            ),
        ],
    ),
]


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def segtrain_cmd(*args: object) -> list[str]:
    return [sys.executable, "-m", "segtrain", *map(str, args)]


def run_cli(
    *args: object, timeout: float = 300, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `segtrain ARGS` to completion and return it (stdout and stderr as text)."""
    return subprocess.run(
        segtrain_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(**(env or {})),
        cwd=cwd or ROOT,
    )


def _tail(text: str | bytes | None, chars: int) -> str:
    if text is None:
        return "(not captured)"
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    text = text.rstrip()
    if not text:
        return "(empty)"
    return text if len(text) <= chars else "…" + text[-chars:]


def assert_exit(proc: Any, code: int, stdout: str | None = None, stderr: str | None = None, tail: int = 3000) -> None:
    """Assert that `proc` exited with `code`; on failure show the command, the code and the output's tails.

    `proc` is a `subprocess.CompletedProcess`, a `subprocess.Popen` after `communicate()` (pass what
    it returned as `stdout`/`stderr`) or a typer `CliRunner` result.
    """
    __tracebackhide__ = True
    if hasattr(proc, "exit_code"):  # a CliRunner result: in-process, its own streams and exception
        actual, args = proc.exit_code, "segtrain (in-process CliRunner)"
        out = proc.stdout if stdout is None else stdout
        try:
            err = proc.stderr if stderr is None else stderr
        except ValueError:  # stderr mixed into stdout
            err = None
        if proc.exception is not None and not isinstance(proc.exception, SystemExit):
            import traceback

            err = (err or "") + "\n" + "".join(traceback.format_exception(proc.exception))
    else:
        actual = proc.returncode
        args = proc.args if isinstance(proc.args, str) else shlex.join(map(str, proc.args))
        out = getattr(proc, "stdout", None) if stdout is None else stdout
        err = getattr(proc, "stderr", None) if stderr is None else stderr
        if not isinstance(out, (str, bytes)):
            out = None  # a Popen's pipe, already read by communicate()
        if not isinstance(err, (str, bytes)):
            err = None
    if actual == code:
        return
    raise AssertionError(
        f"exit code {actual}, expected {code}\n"
        f"command: {args}\n"
        f"--- stdout (tail) ---\n{_tail(out, tail)}\n"
        f"--- stderr (tail) ---\n{_tail(err, tail)}"
    )


def wait_for(
    condition: Callable[[], object],
    what: str,
    proc: subprocess.Popen | None = None,
    timeout: float = 180,
    interval: float = 0.02,
) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` s, or with `proc`'s output where it ended.

    A `proc` that ends just after the condition came true is no failure: it is asked once more.
    """
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            if condition():
                return
            out, err = proc.communicate()
            raise AssertionError(
                f"the process ended ({proc.returncode}) before {what}\n"
                f"--- stdout (tail) ---\n{_tail(out, 3000)}\n--- stderr (tail) ---\n{_tail(err, 3000)}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def epochs_logged(run_dir: Path) -> int:
    """How many epochs the run's epochs.jsonl records so far."""
    path = run_dir / "epochs.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def with_jobs(command: list[object], jobs: int) -> list[object]:
    """A `segtrain run` command line with segtrain's own --jobs, before the script's arguments (after `--`)."""
    end = command.index("--")
    return [*command[:end], "--jobs", jobs, *command[end:]]


def one_line(text: str) -> str:
    """`text` with every run of whitespace as one space (rich wraps long messages)."""
    return " ".join(text.split())


def fit_args(script: str, run_dir: Path, epochs: int, segment: int | str, *more: object) -> list[object]:
    return [
        "fit",
        SCRIPTS / f"{script}.py",
        "--epochs",
        epochs,
        "--segment",
        segment,
        "--run-dir",
        run_dir,
        "--no-progress",
        *more,
    ]


def final_variables(run_dir: Path) -> dict[str, Any]:
    """Weights and optimizer variables of the run's newest complete checkpoint, as numpy arrays."""
    import segtrain

    model = segtrain.load_model(run_dir)
    return {
        "weights": [v.numpy() for v in model.weights],
        "optimizer": [v.numpy() for v in model.optimizer.variables],
        "iterations": int(model.optimizer.iterations.numpy()),
    }


def assert_bitwise_equal(a: dict, b: dict) -> None:
    import numpy as np

    assert a["iterations"] == b["iterations"]
    for kind in ("weights", "optimizer"):
        assert len(a[kind]) == len(b[kind])
        for i, (x, y) in enumerate(zip(a[kind], b[kind], strict=True)):
            assert x.dtype == y.dtype and x.shape == y.shape
            assert np.array_equal(x, y), f"{kind}[{i}] differs: max |Δ| = {np.max(np.abs(x - y))}"


@pytest.fixture(scope="session", autouse=True)
def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# pytest-xdist sets COLUMNS=80 for its workers, and a rich Console made while it is set keeps that width for
# good: segtrain's are made when a test module imports segtrain.cli. Without it, they read COLUMNS as they print.
os.environ.pop("COLUMNS", None)


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables and status lines one line each, whatever the length of the temporary paths they show (pytest-xdist
    adds `popen-gwN/` to them); a test of wrapping sets its own COLUMNS."""
    monkeypatch.setenv("COLUMNS", "300")

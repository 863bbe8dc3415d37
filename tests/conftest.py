"""Shared helpers: run the real `segtrain` command in a subprocess and read what it left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def segtrain_cmd(*args: object) -> list[str]:
    return [sys.executable, "-m", "segtrain", *map(str, args)]


def run_cli(*args: object, timeout: float = 300, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `segtrain ARGS` to completion and return it (stdout and stderr as text)."""
    return subprocess.run(segtrain_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          env=cli_env(**(env or {})), cwd=cwd or ROOT)


def fit_args(script: str, run_dir: Path, epochs: int, segment: int, *more: object) -> list[object]:
    return ["fit", SCRIPTS / f"{script}.py", "--epochs", epochs, "--segment", segment,
            "--run-dir", run_dir, "--no-progress", *more]


def final_variables(run_dir: Path) -> dict[str, list]:
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
        for i, (x, y) in enumerate(zip(a[kind], b[kind])):
            assert x.dtype == y.dtype and x.shape == y.shape
            assert np.array_equal(x, y), f"{kind}[{i}] differs: max |Δ| = {np.max(np.abs(x - y))}"


@pytest.fixture(scope="session", autouse=True)
def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

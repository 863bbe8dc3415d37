"""The core is backend-neutral: the same exactness on JAX, and a clear error for a TF-only format."""

from __future__ import annotations

import importlib.util
import json
import subprocess

import pytest

from conftest import assert_exit, cli_env, fit_args, segtrain_cmd

pytestmark = [
    pytest.mark.slow,
    pytest.mark.jax,
    pytest.mark.skipif(
        importlib.util.find_spec("jax") is None, reason="JAX is not installed (it comes with the test extra)"
    ),
]

COMPARE = """
import sys, numpy as np, segtrain
a, b = (segtrain.load_model(d) for d in sys.argv[1:])
same = all(np.array_equal(x.numpy(), y.numpy())
           for x, y in zip(a.weights + a.optimizer.variables, b.weights + b.optimizer.variables))
print("EQUAL" if same else "DIFFERENT", int(a.optimizer.iterations.numpy()))
"""


def _jax(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*map(str, args)], capture_output=True, text=True, timeout=600, env=cli_env(KERAS_BACKEND="jax")
    )


@pytest.mark.parametrize("script, fmt", [("subclassed", "keras")])
def test_jax_segmented_equals_continuous(tmp_path, script, fmt):
    whole, split = tmp_path / "whole", tmp_path / "split"
    for run_dir, segment, isolation in ((whole, 6, "session"), (split, 2, "process")):
        proc = _jax(
            *segtrain_cmd(
                *fit_args(script, run_dir, 6, segment, "--seed", 3, "--format", fmt, "--isolation", isolation)
            )
        )
        assert_exit(proc, 0)
    proc = _jax(segtrain_cmd()[0], "-c", COMPARE, whole, split)
    assert_exit(proc, 0)
    assert proc.stdout.split()[0] == "EQUAL"


def test_savedmodel_format_needs_tensorflow(tmp_path):
    proc = _jax(*segtrain_cmd(*fit_args("dict_io", tmp_path / "run", 2, 1, "--format", "savedmodel")))
    assert_exit(proc, 2)
    assert "--format savedmodel is not available on the 'jax' backend" in proc.stderr
    assert "it supports h5, keras" in proc.stderr


def test_a_backend_the_script_chooses_holds_in_every_worker(tmp_path):
    """Pre-started workers import ahead the backend the previous worker ran, not Keras' default."""
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        segtrain_cmd(*fit_args("jax_by_script", run_dir, 6, 2, "--seed", 3)),
        capture_output=True,
        text=True,
        timeout=600,
        env=cli_env(KERAS_BACKEND="tensorflow"),
    )
    assert_exit(proc, 0)
    segments = [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]
    assert [(s["prestarted"], s["backend"]) for s in segments] == [(False, "jax"), (True, "jax"), (True, "jax")]

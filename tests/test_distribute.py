"""`--distribute data-parallel` on the backends' own engines, over a CPU split into two devices (issue 16).

`SEGTRAIN_CPU_DEVICES=2` splits the CPU into two devices on either backend, so the distributed path runs
here as it would over two GPUs: TensorFlow's MirroredStrategy, Keras' DataParallel on JAX.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import assert_exit, cli_env, fit_args, one_line, segtrain_cmd

TWO_DEVICES = {"SEGTRAIN_CPU_DEVICES": "2"}

COMPARE = """
import sys, numpy as np, segtrain
a, b = (segtrain.load_model(d) for d in sys.argv[1:])   # loaded here, with one replica
same = all(np.array_equal(x.numpy(), y.numpy())
           for x, y in zip(a.weights + a.optimizer.variables, b.weights + b.optimizer.variables, strict=True))
print("EQUAL" if same else "DIFFERENT", int(a.optimizer.iterations.numpy()))
"""


def _run(backend: str, *args: object, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*map(str, args)], capture_output=True, text=True, timeout=600, env=cli_env(KERAS_BACKEND=backend, **env)
    )


def _replicas(run_dir) -> list[int]:
    return [json.loads(line)["replicas"] for line in (run_dir / "segments.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=pytest.mark.jax)])
def test_data_parallel_segments_equal_one_segment_load_with_one_replica_and_resume_with_another(tmp_path, backend):
    whole, split = tmp_path / "whole", tmp_path / "split"
    for run_dir, segment in ((whole, 4), (split, 2)):
        args = fit_args("keras_args", run_dir, 4, segment, "--seed", 3, "--distribute", "data-parallel")
        assert_exit(_run(backend, *segtrain_cmd(*args), **TWO_DEVICES), 0)
    assert _replicas(split) == [2, 2]
    compare = _run(backend, segtrain_cmd()[0], "-c", COMPARE, whole, split)
    assert_exit(compare, 0)
    assert compare.stdout.split() == ["EQUAL", "24"]

    # Another replica count may go on with the run: correct, though not bitwise what two replicas would do.
    more = _run(backend, *segtrain_cmd("resume", split, "--epochs", 6, "--distribute", "none", "--no-progress"))
    assert_exit(more, 0)
    assert _replicas(split) == [2, 2, 1]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=pytest.mark.jax)])
def test_session_isolation_splits_the_cpu_before_it_imports_the_backend_and_equals_process_isolation(tmp_path, backend):
    # segtrain itself imports the backend in this process (its first segment): XLA_FLAGS must be set before that.
    whole, split = tmp_path / "whole", tmp_path / "split"
    for run_dir, segment, isolation in ((whole, 4, "process"), (split, 2, "session")):
        args = fit_args("keras_args", run_dir, 4, segment, "--seed", 3, "--distribute", "data-parallel")
        assert_exit(_run(backend, *segtrain_cmd(*args, "--isolation", isolation), **TWO_DEVICES), 0)
    assert _replicas(split) == [2, 2]
    compare = _run(backend, segtrain_cmd()[0], "-c", COMPARE, whole, split)
    assert_exit(compare, 0)
    assert compare.stdout.split() == ["EQUAL", "24"]


def test_a_bad_device_count_and_an_engine_a_backend_lacks_say_what_to_do(monkeypatch):
    from segtrain.backends.base import KerasBackend
    from segtrain.backends.distribution import cpu_devices
    from segtrain.errors import ConfigError

    monkeypatch.setenv("SEGTRAIN_CPU_DEVICES", "two")
    with pytest.raises(ConfigError, match="SEGTRAIN_CPU_DEVICES must be a positive number of devices"):
        cpu_devices()
    with pytest.raises(ConfigError) as info:
        KerasBackend("torch", "torch").data_parallel()
    assert "--distribute data-parallel is not offered on the 'torch' backend" in one_line(str(info.value))

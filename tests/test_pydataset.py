"""Keras' own data classes through the real CLI: a `keras.utils.PyDataset` that reshuffles an index array in
`on_epoch_end()` with NumPy's global generator (tests/scripts/pydataset_mlp.py, and the unmodified
tests/scripts/plain/pydataset_train.py under `segtrain run`) trains in segments, or resumes in the middle of an epoch,
to the same bits as one segment; with Keras' worker threads too. A generator with steps_per_epoch trains, and is
named before training as not resumable exactly.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import (
    ROOT,
    SCRIPTS,
    assert_bitwise_equal,
    assert_exit,
    cli_env,
    epochs_logged,
    final_variables,
    fit_args,
    one_line,
    run_cli,
    segtrain_cmd,
    wait_for,
)

pytestmark = pytest.mark.slow

EPOCHS = 6
STEPS = 6  # 96 samples in batches of 16


def _fit(run_dir: Path, segment: int, *params: str, backend: str = "tensorflow") -> subprocess.CompletedProcess:
    more = [arg for param in params for arg in ("--param", param)]
    args = fit_args("pydataset_mlp", run_dir, EPOCHS, segment, "--seed", 3, *more)
    proc = run_cli(*args, env={"KERAS_BACKEND": backend})
    assert_exit(proc, 0)
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """pydataset_mlp.py in one segment, no worker threads: the reference."""
    run_dir = tmp_path_factory.mktemp("one") / "run"
    _fit(run_dir, EPOCHS)
    assert final_variables(run_dir)["iterations"] == EPOCHS * STEPS
    return run_dir


def test_fit_in_segments_of_two_equals_one_segment(tmp_path, reference):
    run_dir = tmp_path / "run"
    proc = _fit(run_dir, 2)
    assert_bitwise_equal(final_variables(reference), final_variables(run_dir))
    history = json.loads((run_dir / "history.json").read_text())
    assert history == json.loads((reference / "history.json").read_text())
    assert "not resumable" not in proc.stderr and "will not equal" not in proc.stderr  # nothing to warn about


def test_the_datasets_worker_threads_read_the_same_batches(tmp_path, reference):
    """PyDataset(workers=2): its two threads fetch the batches, in segments of 2: still the reference's bits."""
    run_dir = tmp_path / "run"
    _fit(run_dir, 2, "workers=2")
    assert_bitwise_equal(final_variables(reference), final_variables(run_dir))


@pytest.mark.jax
def test_worker_threads_on_jax(tmp_path):
    """On JAX, Keras' own workers would fetch batches before the first epoch (to build the model) and train them in
    it: the dataset's workers fetch within each epoch only, and segments of 2 with threads equal one segment."""
    one, two = tmp_path / "one", tmp_path / "two"
    _fit(one, EPOCHS, backend="jax")
    _fit(two, 2, "workers=2", backend="jax")
    env = dict(os.environ, KERAS_BACKEND="jax")
    code = (
        "import sys; sys.path.insert(0, 'tests'); from conftest import assert_bitwise_equal, final_variables; "
        f"assert_bitwise_equal(final_variables({str(one)!r}), final_variables({str(two)!r}))"
    )
    check = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert_exit(check, 0)


def test_sigterm_in_the_middle_of_an_epoch_resumes_exactly(tmp_path, reference):
    run_dir = tmp_path / "run"
    args = fit_args("pydataset_mlp", run_dir, EPOCHS, EPOCHS, "--seed", 3, "--param", "sleep=0.1")
    pipe = subprocess.PIPE
    proc = subprocess.Popen(segtrain_cmd(*args), stdout=pipe, stderr=pipe, text=True, env=cli_env())
    wait_for(lambda: epochs_logged(run_dir) >= 2, "the second epoch", proc, timeout=120)
    time.sleep(0.25)  # into the third epoch, whose 6 batches take ~0.1 s each
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert_exit(proc, 75, out, err)
    mid_epoch = sorted(p.name for p in run_dir.glob("ckpt-000002.*") if (p / "state.json").exists())
    assert mid_epoch, sorted(p.name for p in run_dir.iterdir())

    again = run_cli(*args)
    assert_exit(again, 0)
    segments = [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]
    assert segments[-1]["resumed_from"] == mid_epoch[-1]
    assert_bitwise_equal(final_variables(reference), final_variables(run_dir))


def _run(run_dir: Path, segment: int) -> subprocess.CompletedProcess:
    script = SCRIPTS / "plain" / "pydataset_train.py"
    proc = run_cli("run", script, "--segment", segment, "--seed", 0, "--run-dir", run_dir, "--no-progress")
    assert_exit(proc, 0)
    return proc


def _after_fit(proc: subprocess.CompletedProcess) -> dict:
    (found,) = re.findall(r"script: after fit (\{.*\})", proc.stdout + proc.stderr)
    return json.loads(found)


def test_segtrain_run_of_a_script_whose_fit_takes_a_pydataset(tmp_path):
    """`model.fit(pydataset, epochs=6)` in an unmodified script: segments of 2 equal one segment."""
    one, two = tmp_path / "one", tmp_path / "two"
    whole, split = _run(one, EPOCHS), _run(two, 2)
    assert_bitwise_equal(final_variables(one), final_variables(two))
    # The last worker's dataset had the 6 on_epoch_end() calls one process makes: 4 replayed, 2 trained.
    assert _after_fit(split) == _after_fit(whole)
    assert _after_fit(split)["ended"] == EPOCHS and _after_fit(split)["epochs"] == list(range(EPOCHS))


def test_a_generator_with_steps_per_epoch_trains_and_is_named_as_not_resumable(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(*fit_args("generator_mlp", run_dir, 4, 2, "--seed", 0))
    assert_exit(proc, 0)
    text = one_line(proc.stderr)
    assert "generator_mlp.py: the data from `load_data()` is a Python generator, which cannot be rewound" in text
    assert "use a keras.utils.PyDataset" in text
    assert final_variables(run_dir)["iterations"] == 4 * 3  # fit_kwargs steps_per_epoch=3


def test_under_segtrain_run_messages_name_the_scripts_fit_call(tmp_path):
    """A launched script defines no load_data(): what is wrong with its data is said of its model.fit(...) call."""
    script = SCRIPTS / "plain" / "pydataset_train.py"
    proc = run_cli("run", script, "--run-dir", tmp_path / "run", "--no-progress", "--", "--generator")
    assert_exit(proc, 2)
    text = one_line(proc.stderr)
    assert (
        "the data passed to model.fit(...) in pydataset_train.py is a generator, which has no length. "
        "Pass model.fit(..., steps_per_epoch=N)"
    ) in text
    assert "load_data" not in text

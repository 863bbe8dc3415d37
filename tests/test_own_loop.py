"""A script's own `train_epoch()`: segtrain still owns the loop, checkpoints, boundaries and telemetry."""

from __future__ import annotations

import json

import pytest

from conftest import assert_bitwise_equal, assert_exit, final_variables, fit_args, run_cli

pytestmark = pytest.mark.slow


def test_own_training_function_continues_exactly(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert_exit(run_cli(*fit_args("own_loop", whole, 6, 6, "--seed", 5, "--isolation", "session")), 0)
    proc = run_cli(*fit_args("own_loop", split, 6, 2, "--seed", 5))
    assert_exit(proc, 0)
    reference = final_variables(whole)
    assert reference["iterations"] == 6 * 4
    assert_bitwise_equal(reference, final_variables(split))
    history = json.loads((split / "history.json").read_text())
    assert history == json.loads((whole / "history.json").read_text()) and len(history["loss"]) == 6
    epochs = [json.loads(line) for line in (split / "epochs.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == list(range(6)) and [e["segment"] for e in epochs] == [0, 0, 1, 1, 2, 2]


def test_train_epoch_returning_nonsense_is_a_script_error(tmp_path):
    script = tmp_path / "bad.py"
    script.write_text(
        (fit_args("own_loop", tmp_path, 1, 1)[1])
        .read_text()
        .replace('return {"loss": float(np.mean(losses))}', "return 3")
    )
    proc = run_cli("fit", script, "--epochs", 2, "--segment", 1, "--run-dir", tmp_path / "r", "--no-progress")
    assert_exit(proc, 2)
    assert "`train_epoch()` must return a dict of logs" in proc.stderr

"""Segmented training continues exactly: bitwise-equal weights and optimizer state.

One segment of 6 epochs against three of 2 in process isolation in every
checkpoint format, and against three of 2 and six of 1 in session isolation, on a functional model with dict
inputs/outputs, BatchNorm, Dropout and a learning-rate schedule, and on a
subclassed model whose custom layer owns a SeedGenerator.
"""

from __future__ import annotations

import json

import pytest

from conftest import assert_bitwise_equal, assert_exit, final_variables, fit_args, run_cli

pytestmark = pytest.mark.slow

EPOCHS = 6
STEPS = {"dict_io": 8, "subclassed": 3}  # ceil(samples / batch_size)
# Every format is tested in a fresh process (segments of 2, process isolation); the isolation modes and segment
# lengths, which do not change how a format loads, are tested once each, in the default format.
CASES = {
    "keras": [(2, "session"), (1, "session"), (2, "process")],
    "h5": [(2, "process")],
    "savedmodel": [(2, "process")],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("exact")


def _run(runs, script, fmt, segment, isolation):
    run_dir = runs / f"{script}-{fmt}-{segment}-{isolation}"
    if not run_dir.exists():
        proc = run_cli(
            *fit_args(script, run_dir, EPOCHS, segment, "--seed", 7, "--format", fmt, "--isolation", isolation)
        )
        assert_exit(proc, 0)
    return run_dir


@pytest.mark.parametrize("fmt", ["keras", "h5", "savedmodel"])
@pytest.mark.parametrize("script", ["dict_io", "subclassed"])
def test_segmented_equals_continuous(runs, script, fmt):
    # One segment never reloads, so its format does not matter: one reference per script, loaded back.
    reference = final_variables(_run(runs, script, "keras", EPOCHS, "session"))
    assert reference["iterations"] == EPOCHS * STEPS[script]
    for segment, isolation in CASES[fmt]:
        run_dir = _run(runs, script, fmt, segment, isolation)
        assert_bitwise_equal(reference, final_variables(run_dir))
        history = json.loads((run_dir / "history.json").read_text())
        assert all(len(values) == EPOCHS for values in history.values())


def test_six_single_epoch_processes_equal_one_segment(runs):
    reference = final_variables(_run(runs, "dict_io", "keras", EPOCHS, "session"))
    assert_bitwise_equal(reference, final_variables(_run(runs, "dict_io", "keras", 1, "process")))


def test_history_is_the_same_however_segmented(runs):
    whole = json.loads((_run(runs, "subclassed", "keras", EPOCHS, "session") / "history.json").read_text())
    split = json.loads((_run(runs, "subclassed", "keras", 2, "process") / "history.json").read_text())
    assert whole == split
    assert set(whole) >= {"loss", "mae", "val_loss", "val_mae"}

"""Keras' own fit() arguments, exact across segments; a run extended with more epochs (issue 14)."""

from __future__ import annotations

import json

import pytest

from conftest import assert_bitwise_equal, assert_exit, final_variables, fit_args, one_line, run_cli

pytestmark = pytest.mark.slow


def test_shuffle_false_and_validation_split_are_exact_across_segments(tmp_path):
    one, segmented = tmp_path / "one", tmp_path / "segmented"
    assert_exit(run_cli(*fit_args("keras_args", one, 4, 4, "--seed", 3)), 0)
    assert_exit(run_cli(*fit_args("keras_args", segmented, 4, 2, "--seed", 3)), 0)
    assert_bitwise_equal(final_variables(segmented), final_variables(one))
    # validation_split held out the last quarter (16 of 64 samples): the model validated on it every epoch.
    epochs = [json.loads(line) for line in (segmented / "epochs.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [0, 1, 2, 3] and all("val_loss" in e["logs"] for e in epochs)


def test_a_finished_run_extended_equals_a_run_of_that_length(tmp_path):
    extended, straight = tmp_path / "extended", tmp_path / "straight"
    assert_exit(run_cli(*fit_args("keras_args", straight, 10, 5, "--seed", 1, "--isolation", "session")), 0)
    assert_exit(run_cli(*fit_args("keras_args", extended, 6, 3, "--seed", 1, "--isolation", "session")), 0)
    # The same command with more epochs goes on from the finished run's final checkpoint...
    assert_exit(run_cli(*fit_args("keras_args", extended, 8, 3, "--seed", 1, "--isolation", "session")), 0)
    # ...and so does `segtrain resume --epochs`.
    assert_exit(run_cli("resume", extended, "--epochs", 10, "--no-progress"), 0)
    assert_bitwise_equal(final_variables(extended), final_variables(straight))
    manifest = json.loads((extended / "manifest.json").read_text())
    assert manifest["config"]["epochs"] == 10 and manifest["status"] == "finished"

    lower = run_cli("resume", extended, "--epochs", 4, "--no-progress")
    assert_exit(lower, 2)
    assert "the run has trained 10 already (it may only grow)" in one_line(lower.stderr)


def test_a_pipeline_that_reshuffles_every_iteration_is_named_before_training(tmp_path):
    proc = run_cli(*fit_args("reshuffling_pipeline", tmp_path / "run", 2, 1, "--seed", 0))
    assert_exit(proc, 0)
    text = one_line(proc.stderr)
    assert "reshuffling_pipeline.py: load_data() returns a tf.data pipeline whose shuffle() draws a new order" in text
    assert "return a function of the epoch instead" in text
    assert text.count("draws a new order on every iteration") == 1  # at the start, not at every segment

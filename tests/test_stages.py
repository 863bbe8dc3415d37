"""`segtrain run` on a script that calls `fit` more than once: keras.io's transfer learning, then fine-tuning.

tests/scripts/plain/fine_tune.py is written as the guide writes it: a frozen base under a new head (`fit` #1),
then the base unfrozen and the model recompiled with a low learning rate (`fit` #2), then `evaluate`. Each
call is a stage of the run, in a run directory of its own (RUN, then RUN/stages/stage-2), in segments of its
own; through the real CLI, real processes and a real kill -9.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import (
    SCRIPTS,
    assert_bitwise_equal,
    assert_exit,
    cli_env,
    epochs_logged,
    final_variables,
    run_cli,
    segtrain_cmd,
    wait_for,
)

pytestmark = pytest.mark.slow

FINE_TUNE = SCRIPTS / "plain" / "fine_tune.py"
HEAD, TUNE = 4, 6


def args(run_dir: Path, segment: int) -> list[object]:
    return ["run", FINE_TUNE, "--segment", segment, "--seed", 0, "--run-dir", run_dir, "--no-progress", "--",
            "--head-epochs", HEAD, "--tune-epochs", TUNE]  # fmt: skip


def stages(run_dir: Path) -> list[Path]:
    return [run_dir, run_dir / "stages" / "stage-2"]


def segment_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def whole_stages(tmp_path_factory):
    """Each stage in one segment: the reference."""
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    proc = run_cli(*args(run_dir, max(HEAD, TUNE)))
    assert_exit(proc, 0)
    return run_dir, proc


def test_segments_of_2_equal_whole_stages_and_stdout_is_what_python_prints(tmp_path, whole_stages):
    reference, reference_proc = whole_stages
    run_dir = tmp_path / "run"
    proc = run_cli(*args(run_dir, 2))
    assert_exit(proc, 0)
    for mine, theirs in zip(stages(run_dir), stages(reference), strict=True):
        assert_bitwise_equal(final_variables(mine), final_variables(theirs))
    assert [len(segment_lines(stage)) for stage in stages(run_dir)] == [2, 3]
    assert [len(segment_lines(stage)) for stage in stages(reference)] == [1, 1]
    # The second stage's first segment trained in the worker that ended the first stage, where the script went on.
    first, second = segment_lines(run_dir)[-1], segment_lines(stages(run_dir)[1])[0]
    assert first["pid"] == second["pid"]

    # stdout: the script's lines once each, in order, as `python fine_tune.py` prints them (its numbers aside:
    # unseeded; Keras' epoch lines aside: segtrain draws one bar, on stderr), the numbers as whole stages print them.
    assert proc.stdout == reference_proc.stdout
    alone = subprocess.run(
        [sys.executable, FINE_TUNE, "--head-epochs", str(HEAD), "--tune-epochs", str(TUNE)],
        capture_output=True, text=True, env=cli_env(), timeout=300, check=True,
    )  # fmt: skip
    numbers, keras_lines = re.compile(r"-?\d+\.\d+(e-?\d+)?"), re.compile(r"^(Epoch \d+/\d+|\d+/\d+ - )")
    script_lines = [line for line in alone.stdout.splitlines() if not keras_lines.match(line)]
    assert numbers.sub("N", proc.stdout).splitlines() == [numbers.sub("N", line) for line in script_lines]
    head = json.loads(re.search(r"script: head (\{.*\})", proc.stdout)[1])
    tuned = json.loads(re.search(r"script: tuned (\{.*\})", proc.stdout)[1])
    assert head["epochs"] == list(range(HEAD)) and tuned["epochs"] == list(range(TUNE))  # each fit's own History

    status = run_cli("status", run_dir, "--json")
    assert_exit(status, 0)
    found = json.loads(status.stdout)
    assert found["state"] == "finished"
    assert found["stages"] == [
        {"number": 2, "run_dir": str(stages(run_dir)[1]), "state": "finished", "epochs_total": TUNE,
         "epochs_done": TUNE}
    ]  # fmt: skip


def test_kill_9_in_the_second_stage_then_the_same_command_equals_whole_stages(tmp_path, whole_stages):
    reference, reference_proc = whole_stages
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        segtrain_cmd(*args(run_dir, 2)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        start_new_session=True,
    )
    wait_for(lambda: epochs_logged(stages(run_dir)[1]) >= 3, "the second stage's third epoch", proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its workers, at once
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert "script: evaluate" not in out

    killed = run_cli("status", run_dir, "--json")
    assert json.loads(killed.stdout)["state"] == "crashed"

    again = run_cli(*args(run_dir, 2))
    assert_exit(again, 0)
    for mine, theirs in zip(stages(run_dir), stages(reference), strict=True):
        assert_bitwise_equal(final_variables(mine), final_variables(theirs))
    assert len(segment_lines(run_dir)) == 2  # the first stage did not train again
    assert again.stdout == reference_proc.stdout  # the script from its top, once: stage 1 came back at once


def test_a_complete_run_runs_the_script_again_training_nothing(tmp_path, whole_stages):
    reference, reference_proc = whole_stages
    records = [(stage / "segments.jsonl").read_text() for stage in stages(reference)]
    again = run_cli(*args(reference, 2))
    assert_exit(again, 0)
    assert again.stdout == reference_proc.stdout  # both fit() calls returned their History and the model at once
    assert [(stage / "segments.jsonl").read_text() for stage in stages(reference)] == records


def test_sigterm_in_the_second_stage_exits_75_and_resume_goes_on_there(tmp_path, whole_stages):
    reference, _ = whole_stages
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(segtrain_cmd(*args(run_dir, 2)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cli_env())  # fmt: skip
    checkpoint = stages(run_dir)[1] / "ckpt-000002" / "state.json"
    wait_for(checkpoint.exists, "the second stage's first checkpoint", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err
    status = json.loads(run_cli("status", run_dir, "--json").stdout)
    assert status["state"] == "interrupted" and status["hint"] == f"segtrain resume {run_dir}"

    resumed = run_cli("resume", run_dir, "--no-progress")  # the run's own options, its script's arguments
    assert_exit(resumed, 0)
    for mine, theirs in zip(stages(run_dir), stages(reference), strict=True):
        assert_bitwise_equal(final_variables(mine), final_variables(theirs))


def test_a_second_fit_from_initial_epoch_counts_on_as_keras_does(tmp_path):
    """tensorflow.org's tutorial goes on with `fit(epochs=head + tune, initial_epoch=len(history.epoch))`: the
    stage trains `tune` epochs, Keras' callbacks and the History count them from `initial_epoch`, and segments
    of 2 equal one segment a stage."""

    def go_on(run_dir: Path, segment: int):
        proc = run_cli("run", FINE_TUNE, "--segment", segment, "--seed", 0, "--run-dir", run_dir, "--no-progress",
                       "--", "--head-epochs", 2, "--tune-epochs", 3, "--go-on")  # fmt: skip
        assert_exit(proc, 0)
        return proc

    whole, segmented = go_on(tmp_path / "whole", 3), go_on(tmp_path / "segmented", 2)
    for mine, theirs in zip(stages(tmp_path / "segmented"), stages(tmp_path / "whole"), strict=True):
        assert_bitwise_equal(final_variables(mine), final_variables(theirs))
    tuned = json.loads(re.search(r"script: tuned (\{.*\})", segmented.stdout)[1])
    assert tuned == json.loads(re.search(r"script: tuned (\{.*\})", whole.stdout)[1])
    assert tuned["epochs"] == [2, 3, 4] and len(tuned["loss"]) == 3
    # The script's callback saw Keras' indices; a list it keeps lives in each worker (the last segment's saw 4).
    assert "script: callback saw [2, 3, 4]" in whole.stdout and "script: callback saw [4]" in segmented.stdout
    stage = stages(tmp_path / "segmented")[1]
    assert epochs_logged(stage) == 3 and len(segment_lines(stage)) == 2  # the stage's run counts its own 3 epochs

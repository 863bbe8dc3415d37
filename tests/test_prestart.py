"""The pre-started worker: it hands over cleanly, never touches the device before it takes over,
and a worker that dies before taking over costs a restart, not the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from conftest import assert_bitwise_equal, cli_env, final_variables, fit_args, run_cli, segtrain_cmd


CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}  # the CPU path, even on a machine with a GPU


def _segments(run_dir):
    return [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]


def test_prestarted_workers_take_over_and_stay_exact(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert run_cli(*fit_args("dict_io", whole, 6, 6, "--seed", 4, "--isolation", "session")).returncode == 0
    assert run_cli(*fit_args("dict_io", split, 6, 2, "--seed", 4), env=CPU_ONLY).returncode == 0
    segments = _segments(split)
    assert [s["prestarted"] for s in segments] == [False, True, True]
    assert len({s["pid"] for s in segments}) == 3
    # On a CPU the waiting workers built the model and traced its train step before the hand-over;
    # the checkpoint then overwrote everything that step changed: bitwise equal all the same.
    assert segments[0]["warm_up_seconds"] is None
    assert all(s["warm_up_seconds"] > 0 for s in segments[1:])
    assert_bitwise_equal(final_variables(whole), final_variables(split))


def test_waiting_worker_defers_data_and_device_until_it_takes_over(tmp_path):
    """As on a GPU machine: the waiting worker only imports; load_data() runs after the hand-over."""
    run_dir, load_log = tmp_path / "run", tmp_path / "loads.jsonl"
    proc = subprocess.run(segtrain_cmd(*fit_args("records_load", run_dir, 6, 2, "--seed", 4, "--keep", 5)), text=True,
                          capture_output=True, env=cli_env(SEGTRAIN_DEFER_DATA="1", LOAD_LOG=str(load_log)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    segments = _segments(run_dir)
    assert all(s["data_deferred"] for s in segments)
    assert not any(s["device_runtime_before_takeover"] for s in segments)
    assert not any(s["warm_up_seconds"] for s in segments)  # no model, no trace before the hand-over
    loads = {rec["pid"]: rec["time"] for rec in map(json.loads, load_log.read_text().splitlines())}
    for before, after in zip(segments, segments[1:]):
        committed = (run_dir / before["checkpoint"] / "state.json").stat().st_mtime
        assert loads[after["pid"]] >= committed  # data (and the device) only after the previous segment saved


def test_default_cpu_worker_loads_data_while_waiting(tmp_path):
    run_dir, load_log = tmp_path / "run", tmp_path / "loads.jsonl"
    proc = subprocess.run(segtrain_cmd(*fit_args("records_load", run_dir, 4, 2)), text=True, capture_output=True,
                          env=cli_env(LOAD_LOG=str(load_log), **CPU_ONLY))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not any(s["data_deferred"] for s in _segments(run_dir))


def test_a_prestarted_worker_that_dies_before_taking_over(tmp_path):
    """Kill the waiting worker: the segment fails cleanly (exit 1, message) and re-running resumes."""
    run_dir = tmp_path / "run"
    args = fit_args("slow", run_dir, 4, 2, "--seed", 11)
    proc = subprocess.Popen(segtrain_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(), start_new_session=True)
    deadline = time.monotonic() + 120
    waiting = None
    while waiting is None and time.monotonic() < deadline:
        children = subprocess.run(["pgrep", "-f", f"segtrain.worker {run_dir}"], capture_output=True, text=True)
        pids = sorted(int(p) for p in children.stdout.split())
        if len(pids) == 2:
            waiting = pids[-1]  # the newer worker is the pre-started one
        time.sleep(0.05)
    assert waiting is not None, "no pre-started worker seen"
    os.kill(waiting, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    assert "was killed by signal 9 before finishing" in " ".join(err.split())
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "finished"

"""The pre-started worker: it hands over cleanly, never touches the device before it takes over,
imports at low priority but trains at full, and a worker starved or killed before it takes over is
replaced by a fresh one."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import (
    BACKENDS,
    assert_bitwise_equal,
    assert_exit,
    cli_env,
    final_variables,
    fit_args,
    run_cli,
    segtrain_cmd,
)

pytestmark = pytest.mark.slow


CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}  # the CPU path, even on a machine with a GPU


def _segments(run_dir):
    return [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]


def test_prestarted_workers_take_over_and_stay_exact(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert_exit(run_cli(*fit_args("dict_io", whole, 6, 6, "--seed", 4, "--isolation", "session")), 0)
    assert_exit(run_cli(*fit_args("dict_io", split, 6, 2, "--seed", 4), env=CPU_ONLY), 0)
    segments = _segments(split)
    assert [s["prestarted"] for s in segments] == [False, True, True]
    assert len({s["pid"] for s in segments}) == 3
    # On a CPU the waiting workers built the model and traced its train step before the hand-over;
    # the checkpoint then overwrote everything that step changed: bitwise equal all the same.
    assert segments[0]["warm_up_seconds"] is None
    assert all(s["warm_up_seconds"] > 0 for s in segments[1:])
    # The warm-up ran ops, so the check that a deferring worker passes (below) does see a runtime start.
    assert all(s["device_runtime_before_takeover"] for s in segments[1:])
    assert_bitwise_equal(final_variables(whole), final_variables(split))


@pytest.mark.parametrize("backend", BACKENDS)
def test_waiting_worker_defers_data_and_device_until_it_takes_over(tmp_path, backend):
    """As on a GPU machine: the waiting worker only imports; load_data() runs after the hand-over.

    Neither TensorFlow's eager context nor JAX's XLA backends (which on a GPU preallocate
    most of its memory) exist in a waiting worker.
    """
    run_dir, load_log = tmp_path / "run", tmp_path / "loads.jsonl"
    proc = subprocess.run(
        segtrain_cmd(*fit_args("records_load", run_dir, 6, 2, "--seed", 4, "--keep", 5)),
        text=True,
        capture_output=True,
        env=cli_env(SEGTRAIN_DEFER_DATA="1", LOAD_LOG=str(load_log), KERAS_BACKEND=backend),
    )
    assert_exit(proc, 0)
    segments = _segments(run_dir)
    assert {s["backend"] for s in segments} == {backend}
    assert all(s["data_deferred"] for s in segments)
    assert not any(s["device_runtime_before_takeover"] for s in segments)
    assert not any(s["warm_up_seconds"] for s in segments)  # no model, no trace before the hand-over
    loads = {rec["pid"]: rec["time"] for rec in map(json.loads, load_log.read_text().splitlines())}
    for before, after in itertools.pairwise(segments):
        committed = (run_dir / before["checkpoint"] / "state.json").stat().st_mtime
        assert loads[after["pid"]] >= committed  # data (and the device) only after the previous segment saved


def test_default_cpu_worker_loads_data_while_waiting(tmp_path):
    run_dir, load_log = tmp_path / "run", tmp_path / "loads.jsonl"
    proc = subprocess.run(
        segtrain_cmd(*fit_args("records_load", run_dir, 4, 2)),
        text=True,
        capture_output=True,
        env=cli_env(LOAD_LOG=str(load_log), **CPU_ONLY),
    )
    assert_exit(proc, 0)
    assert not any(s["data_deferred"] for s in _segments(run_dir))


def _prestarted_worker(run_dir) -> int:
    """The pid of the run's pre-started worker, as soon as it exists."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        children = subprocess.run(["pgrep", "-f", f"segtrain.worker {run_dir}"], capture_output=True, text=True)
        pids = sorted(int(p) for p in children.stdout.split())
        if len(pids) == 2:
            return pids[-1]  # the newer worker is the pre-started one
        time.sleep(0.05)
    raise AssertionError("no pre-started worker seen")


def _nice_values(pid: int) -> list[int]:
    values = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        values.append(int(stat[stat.rindex(")") + 2 :].split()[16]))
    return values


def _seen_importing_at_low_priority(pid: int) -> bool:
    """Whether the worker `pid` runs a thread at nice 19 (its backend import) before it ends or a minute passes."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if 19 in _nice_values(pid):
                return True
        except FileNotFoundError:
            return False
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("backend", BACKENDS)
def test_prestarted_workers_import_at_low_priority_and_train_at_full(tmp_path, backend):
    """The waiting worker's import yields the CPU to training; no thread keeps that low priority after.
    (A fresh interpreter's import: a worker forked from the zygote imports nothing.)"""
    run_dir, log = tmp_path / "run", tmp_path / "priority.jsonl"
    proc = subprocess.Popen(
        segtrain_cmd(*fit_args("thread_priority", run_dir, 6, 2, "--seed", 2, "--start", "spawn")),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(PRIORITY_LOG=str(log), KERAS_BACKEND=backend, **CPU_ONLY),
    )
    seen_low = _seen_importing_at_low_priority(_prestarted_worker(run_dir))
    out, err = proc.communicate(timeout=300)
    assert_exit(proc, 0, out, err)
    assert seen_low, "the pre-started worker never ran a thread at nice 19"
    segments = _segments(run_dir)
    assert [s["prestarted"] for s in segments] == [False, True, True]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert {r["pid"] for r in records} == {s["pid"] for s in segments}
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert all(set(r["nice"]) == {own} for r in records), records


def test_a_prestarted_worker_starved_while_importing_is_replaced(tmp_path):
    """A waiting worker that gets no CPU at all (stopped while it imports) is given up, not waited for.
    (A fresh interpreter's import: a worker forked from the zygote imports nothing.)"""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        segtrain_cmd(*fit_args("slow", run_dir, 4, 2, "--seed", 11, "--start", "spawn")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    waiting = _prestarted_worker(run_dir)
    assert _seen_importing_at_low_priority(waiting)
    os.kill(waiting, signal.SIGSTOP)
    out, err = proc.communicate(timeout=300)
    assert_exit(proc, 0, out, err)
    segments = _segments(run_dir)
    assert [(s["prestarted"], s["prestart_abandoned"]) for s in segments] == [(False, False), (False, True)]
    assert segments[1]["pid"] != waiting
    assert "still importing its backend at low priority" in " ".join(err.split())
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left stopped
        os.kill(waiting, 0)


def test_a_prestarted_worker_killed_before_taking_over_is_replaced(tmp_path):
    """SIGKILL the waiting worker (as the OOM killer might): a fresh worker trains that segment, exactly."""
    whole, run_dir = tmp_path / "whole", tmp_path / "run"
    assert_exit(run_cli(*fit_args("slow", whole, 4, 4, "--seed", 11, "--isolation", "session")), 0)
    proc = subprocess.Popen(
        segtrain_cmd(*fit_args("slow", run_dir, 4, 2, "--seed", 11)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        start_new_session=True,
    )
    killed = _prestarted_worker(run_dir)
    os.kill(killed, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert_exit(proc, 0, out, err)
    assert f"pre-started worker (pid {killed}) failed before its turn (killed by signal 9)" in " ".join(err.split())
    segments = _segments(run_dir)
    assert [(s["prestarted"], s["prestart_abandoned"]) for s in segments] == [(False, False), (False, True)]
    assert killed not in {s["pid"] for s in segments}
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "finished"
    assert_bitwise_equal(final_variables(whole), final_variables(run_dir))


def test_a_failure_in_the_script_that_recurs_in_the_fresh_worker_stops_the_run(tmp_path):
    """The replacement is tried once: an error that is the script's stops the run with its message,
    the checkpoint before it intact, and the same command resumes once the cause is fixed."""
    run_dir, load_log = tmp_path / "run", tmp_path / "loads"
    args = fit_args("data_goes_away", run_dir, 4, 2, "--seed", 11)
    proc = run_cli(*args, env={"LOAD_LOG": str(load_log), "DATA_LOADS": "1", **CPU_ONLY})
    assert_exit(proc, 2)
    err = " ".join(proc.stderr.split())
    assert "failed before its turn" in err and "the dataset mount went away (load 2)" in err
    assert "the dataset mount went away (load 3)" in err  # the fresh worker's own error ends the run
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "failed"
    assert [s["end_epoch"] for s in _segments(run_dir)] == [2]
    again = run_cli(*args)  # the data is back
    assert_exit(again, 0)
    assert [s["start_epoch"] for s in _segments(run_dir)] == [0, 2]

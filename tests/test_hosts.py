"""Many hosts on JAX: one `segtrain fit` per host, trained together (issue 16, item 4).

Two real processes on 127.0.0.1 play two hosts: JAX's distributed runtime with gloo for the collectives
between CPUs, one CPU device each, the run directory shared. Each kills, signals and resumes real
processes; the reference is one process over two CPU devices (`SEGTRAIN_CPU_DEVICES=2`), in one segment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from conftest import SCRIPTS, assert_exit, cli_env, fit_args, one_line, segtrain_cmd
from segtrain.backends.hosts import Hosts, first_node, hosts_for
from segtrain.errors import ConfigError, ScriptError
from support.ports import free_port

COMPARE = """
import sys, numpy as np, segtrain
a, b = (segtrain.load_model(d) for d in sys.argv[1:])
same = all(np.array_equal(x.numpy(), y.numpy())
           for x, y in zip(a.weights + a.optimizer.variables, b.weights + b.optimizer.variables, strict=True))
print("EQUAL" if same else "DIFFERENT", int(b.optimizer.iterations.numpy()))
"""
EPOCHS = 6
DP = "data-parallel"


# -- where a process is among the others -------------------------------------------------------------


def test_hosts_come_from_the_options_then_keras_variables_then_srun():
    assert hosts_for(DP, "10.0.0.1:1234", 2, 1, environ={}) == Hosts("10.0.0.1:1234", 2, 1)
    keras_env = {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234,10.0.0.2:2345",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
        "KERAS_DISTRIBUTION_PROCESS_ID": "1",
    }
    assert hosts_for(DP, environ=keras_env) == Hosts("10.0.0.1:1234", 2, 1, source="keras")
    srun = {"SLURM_STEP_NODELIST": "gpu[07-09,12]", "SLURM_JOB_ID": "4242", "SLURM_STEP_NUM_TASKS": "4"}
    slurm = hosts_for(DP, environ={**srun, "SLURM_PROCID": "3"})
    assert slurm == Hosts(f"gpu07:{4242 % 4096 + 61440}", 4, 3, source="slurm")  # JAX's own port choice
    assert hosts_for(DP, "h:1", 2, 0, environ={**keras_env, **srun}).source == "flags"  # the options come first
    assert hosts_for(DP, environ={**srun, "SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"}) is None  # one task
    assert hosts_for(DP, environ={}) is None
    assert [first_node(n) for n in ("node1", "a[01-04],b2", "c[3,5]")] == ["node1", "a01", "c3"]
    # Only data-parallel runs look for other hosts; a Slurm job's variables do not make a plain run wait for peers.
    assert hosts_for("none", environ={**srun, "SLURM_PROCID": "0"}) is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: hosts_for(DP, "h:1", 2, None, environ={}), "need all three of --coordinator"),
        (lambda: hosts_for(DP, "h", 2, 0, environ={}), "--coordinator must be HOST:PORT"),
        (lambda: hosts_for(DP, "h:1", 2, 2, environ={}), "--process-id must be in [0, 2). Received: 2"),
        (lambda: hosts_for(DP, "h:1", 1, 0, environ={}), "--num-processes must be 2 or more"),
        (lambda: hosts_for("none", "h:1", 2, 0, environ={}), "add --distribute data-parallel"),
        (
            lambda: hosts_for(DP, environ={"KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}),
            "KERAS_DISTRIBUTION_JOB_ADDRESSES, KERAS_DISTRIBUTION_PROCESS_ID missing",
        ),
    ],
)
def test_a_place_among_hosts_that_cannot_be_says_what_to_give(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert message in one_line(str(info.value))


def test_many_hosts_need_jax_process_isolation_and_data_parallel(tmp_path):
    from segtrain.backends.base import KerasBackend
    from segtrain.config import RunConfig

    hosts = Hosts("h:1", 2, 1)
    with pytest.raises(ConfigError, match="--isolation process"):
        RunConfig(
            SCRIPTS / "hosts_mlp.py", 4, 2, tmp_path, distribute="data-parallel", isolation="session", hosts=hosts
        )
    with pytest.raises(ConfigError) as info:
        KerasBackend("tensorflow", "tensorflow").join(hosts)
    assert "train on the JAX backend only (KERAS_BACKEND=jax)" in one_line(str(info.value))
    assert "keras-team/keras#20585" in str(info.value)
    cfg = RunConfig(SCRIPTS / "hosts_mlp.py", 4, 2, tmp_path, distribute="data-parallel", hosts=hosts)
    assert "hosts" not in cfg.to_json()  # this process's place, never the run's: the manifest does not keep it


def test_the_command_line_refuses_a_place_among_hosts_without_data_parallel_and_a_half_given_one(tmp_path):
    from typer.testing import CliRunner

    from segtrain.cli import app

    def fit(*more: object):
        args = fit_args("hosts_mlp", tmp_path / "run", 4, 2, "--coordinator", "127.0.0.1:1234", *more)
        return CliRunner().invoke(app, [str(a) for a in args])

    result = fit("--num-processes", 2, "--process-id", 0)
    assert_exit(result, 2)
    assert "add --distribute data-parallel" in one_line(result.output)
    result = fit("--distribute", "data-parallel", "--num-processes", 2)
    assert_exit(result, 2)
    assert "need all three of --coordinator HOST:PORT, --num-processes N and --process-id I" in one_line(result.output)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_each_process_feeds_its_part_of_every_batch_and_together_they_are_the_batch():
    from segtrain.training.data import prepare

    x = np.arange(80, dtype="float32").reshape(40, 2)
    y = np.arange(40, dtype="float32")
    kwargs = {"batch_size": 8, "validation_split": 0.2}
    one = prepare((x, y), kwargs, 5, Path("s.py"))
    parts = [prepare((x, y), kwargs, 5, Path("s.py"), share=(i, 2)) for i in range(2)]
    for step in range(2 * one.steps_per_epoch):  # two epochs, each in its own order
        whole = one.train.batch(step)[1]
        assert np.array_equal(np.concatenate([p.train.batch(step)[1] for p in parts]), whole)
    # Validation: Keras batches it by validation_batch_size; each process keeps its half of each such batch.
    assert [p.fit_kwargs["validation_batch_size"] for p in parts] == [4, 4]
    halves = [p.validation[1].reshape(-1, 4) for p in parts]
    assert np.array_equal(np.concatenate(halves, axis=1).ravel(), one.validation[1])


def test_batches_that_do_not_split_evenly_between_processes_are_refused_with_the_fix():
    from segtrain.training.data import prepare

    x, y = np.zeros((30, 2), "float32"), np.zeros(30, "float32")
    assert prepare((x, y), {"batch_size": 8}, 0, Path("s.py"), share=(0, 2)).train.batch(3)[0].shape == (3, 2)
    # The last batch holds 6: two processes take 3 each, but four cannot split it.
    with pytest.raises(ScriptError) as info:
        prepare((x, y), {"batch_size": 8}, 0, Path("s.py"), share=(0, 4))
    assert "with 4 processes every training batch is split into 4 equal parts, but batches of 6" in one_line(
        str(info.value)
    )
    with pytest.raises(ScriptError, match="must return in-memory arrays"):
        prepare(lambda epoch: None, {}, 0, Path("s.py"), share=(0, 2))


# What JAX said, measured (jax 0.10.2), when the other process died or never came: an error's text, or the
# runtime's fatal line among a worker's last words.
LOST = [
    "UNKNOWN: Gloo context initialization failed: DEADLINE_EXCEEDED: GetKeyValue() timed out with key: "
    "cpu:gloo/0,2048/1 and duration: 29.99999993s [type.googleapis.com/tensorflow.CoordinationServiceError='']",
    "UNKNOWN: Gloo AllGather failed: [external/gloo/gloo/transport/tcp/pair.cc:547] Connection closed by peer "
    "[127.0.0.1]:8106",
    "DEADLINE_EXCEEDED: Barrier timed out. Id: b::0. This usually happens because a task triggered the barrier "
    "too early or too slowly.",
    "F1206 10:37:30.256855 4309 client.h:80] Terminating process because the JAX distributed service detected "
    "fatal errors. [...] absl::Status: DEADLINE_EXCEEDED: Deadline Exceeded\n"
    "RPC: /xla.coordination.CoordinationService/RegisterTask",
    "absl::Status: UNAVAILABLE: Failed to send RPC to coordination service. Either the leader task was "
    "preempted/died/restarted unexpectedly or this task is experiencing network issues.",
    "INTERNAL: Shutdown barrier has failed. Barrier result: 'INTERNAL: Barrier failed because: task is set to "
    "ERROR: UNAVAILABLE: Task 1 heartbeat timeout.",
]
NOT_LOST = [
    'Input 0 of layer "dense" is incompatible with the layer: expected axis -1 of input shape to have value 4',
    "ConnectionRefusedError: [Errno 111] Connection refused",  # a script's own download, say
    "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1073741824 bytes.",
]


def test_every_way_jax_says_another_process_is_gone_is_read_in_one_place_as_lost():
    from segtrain.backends import by_name

    jax = by_name("jax")
    assert [text for text in LOST if not jax.peers_lost(text)] == []
    assert [text for text in NOT_LOST if jax.peers_lost(text)] == []
    assert not by_name("tensorflow").peers_lost(LOST[1])  # many hosts train on JAX only


def test_a_segment_whose_worker_lost_the_others_as_it_left_stops_the_run_at_its_checkpoint_resumably():
    from segtrain.outcomes import SegmentOutcome
    from segtrain.runs.runners import stopped_by_loss
    from segtrain.training.records import SegmentResult

    boundary = SegmentResult(0, 0, 2, SegmentOutcome.BOUNDARY, checkpoint="ckpt-000002")
    stopped = stopped_by_loss(boundary, "the loss of another process of the run")
    assert (stopped.outcome, stopped.stop_reason, stopped.checkpoint) == (
        SegmentOutcome.PREEMPTED,
        "the loss of another process of the run",
        "ckpt-000002",
    )
    finished = SegmentResult(2, 4, 6, SegmentOutcome.FINISHED, checkpoint="ckpt-000006-final")
    assert stopped_by_loss(finished, "the loss of another process of the run") == finished  # the run is complete


# -- two processes training one run ------------------------------------------------------------------


def _start(
    run_dir: Path, port: int, index: int, script: Path = SCRIPTS / "hosts_mlp.py", timeout: int = 30, **env: str
) -> subprocess.Popen:
    args = fit_args("hosts_mlp", run_dir, EPOCHS, 2, "--seed", 5, "--distribute", "data-parallel")
    args[1] = script
    args += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", 2, "--process-id", index]
    args += ["--peer-timeout", timeout]
    return subprocess.Popen(
        segtrain_cmd(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(KERAS_BACKEND="jax", **env),
        start_new_session=True,  # its own group: a kill -9 takes the parent and its worker, as a dead host
    )


def _start_both(
    run_dir: Path, script: Path = SCRIPTS / "hosts_mlp.py", timeout: int = 30, **env: str
) -> list[subprocess.Popen]:
    """The same command as process 0 and process 1, on a free port."""
    port = free_port()
    return [_start(run_dir, port, i, script, timeout, **env) for i in range(2)]


def _ended(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str]]:
    """Each process's exit code and stderr; where one has not ended within `timeout` s, every process group is
    killed (no worker of a hung run outlives the test) and the failure shows what each said.

    Every process's pipes are read while they run, all at once (`Popen.wait` with a pipe nobody reads deadlocks
    once the pipe is full, and one process blocked on its output stalls its peer's collectives too).
    """
    with ThreadPoolExecutor(len(procs)) as pool:
        said = [pool.submit(p.communicate, timeout=timeout) for p in procs]
        try:
            errs = [future.result()[1] for future in said]  # each process has ended once its pipes are read
            return [(p.returncode, err) for p, err in zip(procs, errs, strict=True)]
        except subprocess.TimeoutExpired:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
    said_then = [p.communicate() for p in procs]  # the rest of what each wrote, none lost by the timeout
    tails = [f"process {i}: {out[-1500:]}\n{err[-3000:]}" for i, (out, err) in enumerate(said_then)]
    raise AssertionError(f"not ended after {timeout} s:\n" + "\n".join(tails))


def _both(run_dir: Path, script: Path = SCRIPTS / "hosts_mlp.py", **env: str) -> list[tuple[int, str]]:
    """Run the same command as process 0 and 1 to the end: each one's exit code and stderr."""
    return _ended(_start_both(run_dir, script, **env), 300)


def _wait_for_epochs(run_dir: Path, n: int, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 240
    log = run_dir / "epochs.jsonl"
    while not (log.exists() and len(log.read_text().splitlines()) >= n):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [
            p.communicate()[1][-2000:] for p in procs if p.poll() is not None
        ]
        time.sleep(0.05)


def _segments(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The same run in one process over two CPU devices, in one segment."""
    run_dir = tmp_path_factory.mktemp("hosts") / "reference"
    args = fit_args("hosts_mlp", run_dir, EPOCHS, EPOCHS, "--seed", 5, "--distribute", "data-parallel")
    proc = subprocess.run(
        segtrain_cmd(*args),
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(KERAS_BACKEND="jax", SEGTRAIN_CPU_DEVICES="2"),
    )
    assert_exit(proc, 0)
    return run_dir


def _assert_equal_to(reference: Path, run_dir: Path) -> None:
    compare = subprocess.run(
        [segtrain_cmd()[0], "-c", COMPARE, str(reference), str(run_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(KERAS_BACKEND="jax"),
    )
    assert_exit(compare, 0)
    assert compare.stdout.split() == ["EQUAL", str(EPOCHS * 6)]  # 6 steps of 8 per epoch


@pytest.mark.slow
@pytest.mark.jax
def test_kill_9_of_process_0_ends_the_other_resumably_and_the_same_commands_resume_bitwise(tmp_path, reference):
    run_dir = tmp_path / "run"
    procs = _start_both(run_dir, SLOW_EPOCHS="1")
    _wait_for_epochs(run_dir, 3, procs)  # in the second segment
    os.killpg(procs[0].pid, signal.SIGKILL)  # process 0: the coordinator, and the one that writes
    killed = time.monotonic()
    [(code, err)] = _ended([procs[1]], 120)
    lost_after = time.monotonic() - killed
    assert procs[0].wait() == -signal.SIGKILL
    assert code == 75, err[-3000:]
    assert "stopped by the loss of another process of the run" in one_line(err)
    assert "the same command on every host" in one_line(err)
    assert lost_after < 30  # its collective failed at once; --peer-timeout 30 bounds every other wait

    ended = _both(run_dir)
    assert [code for code, _ in ended] == [0, 0], [err[-3000:] for _, err in ended]
    _assert_equal_to(reference, run_dir)
    records = _segments(run_dir)
    assert records[-1]["end_epoch"] == EPOCHS and {r["replicas"] for r in records} == {2}
    # Process 0 alone wrote the run's records: one line per segment; process 1 only its workers' logs.
    assert len({r["index"] for r in records}) == len(records)
    assert any((run_dir / "logs" / "process-1").glob("segment-*.log"))


@pytest.mark.slow
@pytest.mark.jax
def test_a_signal_to_one_process_saves_all_at_the_same_batch_and_they_resume_bitwise(tmp_path, reference):
    run_dir = tmp_path / "run"
    procs = _start_both(run_dir, SLOW_EPOCHS="1")
    _wait_for_epochs(run_dir, 1, procs)
    time.sleep(0.1)  # into the second epoch's batches
    procs[1].send_signal(signal.SIGTERM)  # process 1 only: its worker tells process 0's at the next batch
    ended = _ended(procs, 120)
    assert [code for code, _ in ended] == [75, 75], [err[-3000:] for _, err in ended]
    stopped = _segments(run_dir)[-1]
    assert stopped["outcome"] == "preempted" and stopped["stop_reason"] == "SIGTERM"
    assert ".0000" in stopped["checkpoint"]  # in the middle of an epoch: a batch's checkpoint
    for _, err in ended:  # both say where the run goes on from: the one checkpoint process 0 wrote
        assert f"stopped by SIGTERM; resumable from {stopped['checkpoint']}" in one_line(err)

    # A signal before a segment trains (here while process 1's worker waits for process 0 to join) stops both
    # there, at once, nothing trained: process 0 does not wait out --peer-timeout for a peer that left.
    def assigned() -> int:  # the header each worker's log gets when it is sent its segment
        return sum(path.read_text().count(" trains segment ") for path in (run_dir / "logs" / "process-1").glob("*"))

    seen = assigned()
    port = free_port()
    follower = _start(run_dir, port, 1)
    deadline = time.monotonic() + 120
    while assigned() == seen:  # once assigned, it is joining, and no coordinator is up yet
        assert time.monotonic() < deadline and follower.poll() is None, follower.communicate()[1][-2000:]
        time.sleep(0.05)
    follower.send_signal(signal.SIGTERM)
    leader = _start(run_dir, port, 0)
    ended = _ended([leader, follower], 120)
    assert [code for code, _ in ended] == [75, 75], [err[-3000:] for _, err in ended]
    assert _segments(run_dir)[-1] == stopped  # nothing trained, nothing recorded

    ended = _both(run_dir)
    assert [code for code, _ in ended] == [0, 0], [err[-3000:] for _, err in ended]
    _assert_equal_to(reference, run_dir)


# hosts_mlp.py, but process 1's worker of a later segment stops in load_data() (after it joined the others,
# before the segment's first collective), once it has said so in STALL_CALLS.
STALLING = """
_load_data = load_data


def load_data():
    import pathlib

    import jax

    calls = pathlib.Path(os.environ.get("STALL_CALLS", ""))
    if calls.name and jax.process_index() == 1:
        seen = len(calls.read_text().splitlines()) if calls.exists() else 0
        calls.write_text("load_data\\n" * (seen + 1))
        if seen:
            time.sleep(600)
    return _load_data()
"""


@pytest.mark.slow
@pytest.mark.jax
def test_kill_9_of_process_1_while_the_next_segment_joins_ends_process_0_resumably_and_they_resume_bitwise(
    tmp_path, reference
):
    run_dir, calls = tmp_path / "run", tmp_path / "calls"
    script = tmp_path / "hosts_stalling.py"
    script.write_text((SCRIPTS / "hosts_mlp.py").read_text() + STALLING)
    # --peer-timeout 40: above gloo's own 30 s for a new connection's peer, the window that once ended process 0
    # with exit 1 ("Gloo context initialization failed: DEADLINE_EXCEEDED") instead of 75.
    procs = _start_both(run_dir, script=script, timeout=40, STALL_CALLS=str(calls))
    try:
        deadline = time.monotonic() + 240
        while not (calls.exists() and len(calls.read_text().splitlines()) >= 2):  # segment 2's worker: joined
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [
                p.communicate()[1][-2000:] for p in procs if p.poll() is not None
            ]
            time.sleep(0.05)
        time.sleep(1)  # process 0's worker waits for it in the segment's first collective
        os.killpg(procs[1].pid, signal.SIGKILL)
        killed = time.monotonic()
        [(code, err)] = _ended([procs[0]], 120)
        lost_after = time.monotonic() - killed
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert code == 75, err[-3000:]
    assert "stopped by the loss of another process of the run" in one_line(err)
    assert "the same command on every host" in one_line(err)
    assert lost_after < 30, err[-3000:]
    assert _segments(run_dir)[-1]["end_epoch"] == 2  # the first segment's checkpoint: where they go on from

    ended = _both(run_dir, script=script)
    assert [code for code, _ in ended] == [0, 0], [err[-3000:] for _, err in ended]
    _assert_equal_to(reference, run_dir)

"""The parent<->worker protocol: every message survives the pipe as itself."""

from __future__ import annotations

import dataclasses

import pytest

from segtrain.config import RunConfig
from segtrain.outcomes import SegmentOutcome
from segtrain.training.records import Segment, SegmentResult
from segtrain.worker import protocol
from segtrain.worker.protocol import (
    Assignment,
    CheckpointRef,
    EpochEnded,
    Failed,
    Finished,
    Imported,
    Ready,
    Verdict,
    WorkerEnv,
    decode,
    encode,
)

MESSAGES = [
    Imported(4.2),
    Ready(123, "tensorflow", False, False, 0.8),
    Ready(124, "jax", True, False, None),
    EpochEnded({"epoch": 3, "segment": 1, "seconds": 0.5, "logs": {"loss": 0.1}}),
    Finished(SegmentResult(2, 4, 6, SegmentOutcome.BOUNDARY, checkpoint="ckpt-000006", epoch_seconds=[0.5, 0.4])),
    Failed(2, "model.py: `build_model()` returned a model that is not compiled.", None),
    Failed(1, "RuntimeError: boom", "Traceback (most recent call last): ..."),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_comes_back_as_itself(message):
    line = encode(message)
    assert line.endswith("\n") and line.count("\n") == 1
    assert decode(line) == message


def test_no_message_has_a_field_named_like_the_kind_key():
    for cls in (Imported, Ready, EpochEnded, Finished, Failed):
        assert protocol._KIND_KEY not in {f.name for f in dataclasses.fields(cls)}, cls


@pytest.mark.parametrize(
    "line", ["", "not json\n", '{"kind": "nope"}\n', '{"seconds": 1}\n', '["a"]\n', '{"kind": "imported"}\n']
)
def test_a_line_that_is_no_message_is_skipped(line):
    assert decode(line) is None


def test_assignment_verdict_and_environment_round_trip():
    assignment = Assignment("/runs/a", Segment(1, 2, 4), CheckpointRef("ckpt-000002", committed_here=True), 0.3, True)
    assert Assignment.decode(assignment.encode()) == assignment
    fresh = Assignment("/runs/a", Segment(0, 0, 2), None, 0.0)
    assert Assignment.decode(fresh.encode()) == fresh
    assert Verdict.decode(Verdict("pruned").encode()) == Verdict("pruned")
    cfg = RunConfig("/s.py", 1, 1, signals=("SIGTERM", "SIGUSR2"), debug=True, verbosity="verbose")
    env = WorkerEnv(7, 99, cfg, "/runs/a", True, "jax", protocol=5)
    assert WorkerEnv.from_environ(env.to_environ()) == env
    cfg = RunConfig("/s.py", 0, 1, signals=(), launched=True, seed=4, script_args=["--lr", "0.1 0.2", "é"])
    env = WorkerEnv(7, 99, cfg, None)
    assert WorkerEnv.from_environ(env.to_environ()) == env
    assert all(name.startswith("SEGTRAIN_") for name in env.to_environ())


def test_a_worker_of_other_code_than_its_parent_says_so_and_exits(tmp_path):
    """segtrain upgraded while a run trains: the new worker does not speak a format the old parent misreads."""
    import os
    import subprocess
    import sys

    read_fd, write_fd = os.pipe()
    env = WorkerEnv(write_fd, os.getpid(), RunConfig(tmp_path / "model.py", 1, 1, signals=("SIGTERM",)), protocol=1)
    proc = subprocess.run(
        [sys.executable, "-m", "segtrain.worker"],
        env=dict(os.environ, **env.to_environ()),
        pass_fds=(write_fd,),
        capture_output=True,
        text=True,
        timeout=60,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as messages:
        assert messages.read() == ""
    assert proc.returncode == 1
    assert f"this worker speaks protocol {protocol.PROTOCOL}, its parent 1" in proc.stderr

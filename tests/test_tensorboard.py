"""`--tensorboard`: segtrain's telemetry as TensorBoard scalars, one value per step, continuous over resumes.

The event format is checked against tensorboard's own protocol buffers and
checksum; what is written, from fixture runs in-process; and one slow test
trains, is killed with SIGKILL after writing scalars its checkpoint does not
cover, resumes, and reads everything back with tensorboard's event reader.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT, SCRIPTS, assert_exit, cli_env, run_cli, segtrain_cmd, wait_for
from segtrain.cli import app
from segtrain.paths import RunPaths, is_locked
from segtrain.telemetry import scalars
from segtrain.telemetry.event_file import EventFileWriter, crc32c, event_files, read_events
from segtrain.telemetry.scalars import TensorBoardLog
from support.runs import FakeRun

cli = CliRunner()


def steps(folder: Path) -> Counter[tuple[str, int]]:
    """How many values each (tag, step) has in the event files of `folder` (segtrain's own reader)."""
    return Counter((tag, e.step) for path in event_files(folder) for e in read_events(path) for tag in e.scalars)


def values(folder: Path, tag: str) -> dict[int, float]:
    return {e.step: e.scalars[tag] for path in event_files(folder) for e in read_events(path) if tag in e.scalars}


# -- the format ---------------------------------------------------------------------------------------


def test_event_files_are_tfrecords_of_tensorboards_own_event_protos(tmp_path):
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    writer = EventFileWriter(tmp_path)
    writer.add(3, {"epoch/seconds": 0.25, "memory/rss_mb": 700.5})
    writer.close()
    assert "tfevents" in writer.path.name
    data, events = writer.path.read_bytes(), []
    while data:
        length = data[:8]
        (size,) = struct.unpack("<Q", length)
        body = data[12 : 12 + size]
        assert struct.unpack("<I", data[8:12])[0] == masked_crc32c(length)
        assert struct.unpack("<I", data[12 + size : 16 + size])[0] == masked_crc32c(body)
        events.append(event_pb2.Event.FromString(body))
        data = data[16 + size :]
    assert events[0].file_version == "brain.Event:2"
    assert events[1].step == 3 and events[1].wall_time >= events[0].wall_time > 0
    assert {v.tag: v.simple_value for v in events[1].summary.value} == {"epoch/seconds": 0.25, "memory/rss_mb": 700.5}
    assert [(e.step, e.scalars) for e in read_events(writer.path)][1] == (
        3,
        {"epoch/seconds": 0.25, "memory/rss_mb": 700.5},
    )


def test_a_torn_last_record_is_left_out(tmp_path):
    writer = EventFileWriter(tmp_path)
    writer.add(1, {"a": 1.0})
    writer.add(2, {"a": 2.0})
    writer.close()
    writer.path.write_bytes(writer.path.read_bytes()[:-3])  # a writer killed mid-write
    assert [e.step for e in read_events(writer.path)] == [0, 1]


# -- what is written ----------------------------------------------------------------------------------


def fake_run(root: Path) -> FakeRun:
    """12 epochs in segments of 4: two whole segments, then 3 epochs of a third that crashed (no segment line)."""
    run = FakeRun(root, 12, 4)
    run.segments(0, 1)
    run.checkpoint(8)
    run.attempt(2, 8, 11, recorded=False)
    run.write(status="running")
    return run


def test_a_run_catches_up_with_its_logs_then_writes_each_step_once(tmp_path):
    run = fake_run(tmp_path / "run")
    board = TensorBoardLog(tmp_path / "tb")
    board.catch_up(RunPaths(run.root), 8)  # resumed from the checkpoint after epoch 8
    board.close()
    folder = tmp_path / "tb" / "segtrain"
    written = steps(folder)
    assert sorted(s for t, s in written if t == "epoch/seconds") == list(range(1, 9))  # epochs 9-11 will run again
    assert sorted(s for t, s in written if t == "boundary/seconds") == [0, 4]  # where each segment started
    assert sorted(s for t, s in written if t == "segment/slowdown") == [4, 8]  # where each ended
    assert {t.split("/")[0] for t, _ in written} == {"epoch", "memory", "boundary", "segment", "cost"}
    assert values(folder, "segment/slowdown")[4] == 1.0
    assert values(folder, "epoch/seconds")[1] == pytest.approx(1.5)  # the first epoch traces

    again = TensorBoardLog(tmp_path / "tb")  # the same again: nothing new, no new file
    again.catch_up(RunPaths(run.root), 8)
    again.close()
    assert len(event_files(folder)) == 1 and steps(folder) == written


def test_epochs_that_run_again_after_a_crash_keep_their_first_values(tmp_path):
    run = fake_run(tmp_path / "run")
    first = TensorBoardLog(tmp_path / "tb")
    first.catch_up(RunPaths(run.root), 11)  # as the killed process had written them, epochs 9-11 included
    first.close()
    folder = tmp_path / "tb" / "segtrain"
    before = values(folder, "epoch/seconds")

    resumed = TensorBoardLog(tmp_path / "tb")
    resumed.catch_up(RunPaths(run.root), 8)
    for epoch in range(8, 12):  # the resumed segment runs epochs 9-12 again
        resumed.epoch({"epoch": epoch, "segment": 2, "seconds": 9.0, "rss_mb": 1.0})
    resumed.close()
    counts = steps(folder)
    assert sorted(s for t, s in counts if t == "epoch/seconds") == list(range(1, 13))
    assert set(counts.values()) == {1}
    after = values(folder, "epoch/seconds")
    assert [after[s] for s in (9, 10, 11)] == [before[s] for s in (9, 10, 11)] and after[12] == 9.0


def test_a_folder_it_cannot_write_stops_the_scalars_not_the_run(tmp_path, caplog):
    (tmp_path / "tb").write_text("a file where the folder should be")
    board = TensorBoardLog(tmp_path / "tb")
    board.epoch({"epoch": 0, "segment": 0, "seconds": 1.0})
    board.epoch({"epoch": 1, "segment": 0, "seconds": 1.0})
    assert board.failed and "No more TensorBoard scalars" in caplog.text


def test_the_option_takes_a_folder_auto_or_off():
    assert scalars.setting(True) == scalars.setting("auto") == scalars.setting(" AUTO ") == "auto"
    assert scalars.setting(None) is scalars.setting(False) is scalars.setting("off") is None
    assert scalars.setting(Path("runs/tb")) == str(Path.cwd() / "runs" / "tb")  # a resume elsewhere goes on there
    assert scalars.log_dir("auto", Path("checkpoints/spirals")) == Path("checkpoints/spirals/tensorboard")


def test_resume_keeps_the_runs_folder_changes_it_or_stops(tmp_path, monkeypatch):
    from segtrain import api

    run = FakeRun(tmp_path / "run", 4, 2)
    run.segments(0, 0)
    root = run.write(status="interrupted")
    (root / "leaky.py").write_text("")
    monkeypatch.setattr(api, "_train", lambda cfg, progress: cfg)  # the options resume would train with
    assert api.resume(root).tensorboard is None  # a run directory from before --tensorboard: none
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["config"]["tensorboard"] = "auto"
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert api.resume(root).tensorboard == "auto"
    assert api.resume(root, tensorboard=False).tensorboard is None
    assert api.resume(root, tensorboard="off").tensorboard is None
    assert api.resume(root, tensorboard=tmp_path / "tb").tensorboard == str(tmp_path / "tb")


def test_a_file_for_the_folder_is_bad_input(tmp_path):
    (tmp_path / "tb").write_text("")
    result = cli.invoke(
        app, ["fit", str(SCRIPTS / "slow.py"), "-e", "2", "-s", "1", "--tensorboard", str(tmp_path / "tb")]
    )
    assert_exit(result, 2)
    assert "--tensorboard" in result.output and "is a file" in result.output


# -- a real run, killed and resumed -------------------------------------------------------------------


@pytest.mark.slow
def test_scalars_are_continuous_over_a_kill_and_a_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    folder = run_dir / "tensorboard" / "segtrain"
    fit = segtrain_cmd(
        "fit", SCRIPTS / "slow_epochs.py", "-e", "6", "-s", "3", "--run-dir", run_dir, "--seed", "0",
        "--no-progress", "--tensorboard", "auto",
    )  # fmt: skip
    proc = subprocess.Popen(fit, env=cli_env(), cwd=ROOT, start_new_session=True, stderr=subprocess.DEVNULL)
    try:  # killed once the scalars of epoch 5 are written: epochs 4-5 are after the newest checkpoint (3)
        wait_for(lambda: ("epoch/seconds", 5) in steps(folder), "epoch 5's scalars", proc, interval=0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    first = values(folder, "epoch/seconds")
    wait_for(
        lambda: not is_locked(RunPaths(run_dir)), "the run's lock released", timeout=30
    )  # workers die with their supervisor
    assert_exit(run_cli("resume", run_dir, "--no-progress"), 0)  # the manifest keeps --tensorboard auto

    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    seen = {tag: [e.step for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}
    assert sorted(seen["epoch/seconds"]) == [1, 2, 3, 4, 5, 6]  # one value per epoch, none twice
    assert sorted(seen["memory/rss_mb"]) == [1, 2, 3, 4, 5, 6]
    assert sorted(seen["boundary/seconds"]) == sorted(seen["boundary/load_seconds"]) == [0, 3]
    assert sorted(seen["segment/slowdown"]) == sorted(seen["cost/seconds"]) == [3, 6]
    again = {e.step: e.value for e in accumulator.Scalars("epoch/seconds")}
    assert again[5] == pytest.approx(first[5])  # epoch 5 ran twice: its first value stays
    assert len(event_files(folder)) == 2  # one file per process that wrote

    records = [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]
    assert len(records[0]["spare_cpu_seconds"]) == 3 and sum(records[0]["spare_cpu_seconds"]) > 0
    assert records[-1]["prestart_cpu_seconds"] is None and records[-1]["spare_cpu_seconds"] is None  # resumed cold

    elsewhere = tmp_path / "tb-later"  # asked for once the run is finished: written from the run's logs
    assert_exit(run_cli("resume", run_dir, "--no-progress", "--tensorboard", elsewhere), 0)
    later = steps(elsewhere / "segtrain")
    assert sorted(s for t, s in later if t == "epoch/seconds") == [1, 2, 3, 4, 5, 6] and set(later.values()) == {1}

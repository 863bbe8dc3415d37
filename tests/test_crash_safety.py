"""Crash safety: real processes, real signals, real files.

A run survives SIGKILL at any moment, stops resumably on SIGTERM in the middle
of an epoch and continues bit for bit, falls back from a damaged checkpoint,
keeps its previous checkpoint when the disk fills up, and refuses a second
process or a changed script.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (SCRIPTS, assert_bitwise_equal, cli_env, final_variables, fit_args, run_cli,
                      segtrain_cmd)


def _start(args: list) -> subprocess.Popen:
    return subprocess.Popen(segtrain_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(), start_new_session=True)


def _wait_for(predicate, timeout: float = 120, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


def _epochs_logged(run_dir: Path) -> int:
    path = run_dir / "epochs.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _checkpoints(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.glob("ckpt-*"))


def _segments(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of slow.py: 4 epochs in segments of 2, seed 11."""
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    proc = run_cli(*fit_args("slow", run_dir, 4, 2, "--seed", 11, "--isolation", "session"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run_dir


def test_sigterm_mid_epoch_saves_exits_75_and_resumes_exactly(tmp_path, reference):
    run_dir = tmp_path / "run"
    args = fit_args("slow", run_dir, 4, 2, "--seed", 11)
    proc = _start(args)
    _wait_for(lambda: _epochs_logged(run_dir) >= 1)
    time.sleep(0.25)  # into the second epoch (50 batches of ~10 ms)
    os.kill(proc.pid, signal.SIGTERM)  # the supervisor: it must reach the worker
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err[-2000:]
    assert "resumable" in err
    mid_epoch = [name for name in _checkpoints(run_dir) if name.startswith("ckpt-000001.")]
    assert mid_epoch, _checkpoints(run_dir)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"

    again = run_cli(*args)  # the same command resumes
    assert again.returncode == 0, again.stderr[-2000:]
    assert_bitwise_equal(final_variables(reference), final_variables(run_dir))
    # Metric state was restored in the middle of the epoch: the history is the same too.
    assert json.loads((run_dir / "history.json").read_text()) == json.loads(
        (reference / "history.json").read_text())


@pytest.mark.parametrize("isolation", ["session", "process"])
def test_second_sigint_aborts_at_once_and_the_last_checkpoint_stays_valid(tmp_path, isolation):
    run_dir = tmp_path / "run"
    args = fit_args("stall", run_dir, 4, 2, "--seed", 11, "--isolation", isolation)
    proc = _start(args)
    _wait_for(lambda: (run_dir / "ckpt-000002" / "state.json").exists())
    _wait_for(lambda: _epochs_logged(run_dir) >= 3)
    time.sleep(0.2)  # in epoch 4, whose batches sleep ~0.3 s each
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.02)  # two signals must not coalesce into one
    os.kill(proc.pid, signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "ckpt-000002" in _checkpoints(run_dir)
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "finished"


def test_chaos_sigkill_at_random_moments_then_exact(tmp_path, reference):
    """SIGKILL the whole process group while training, saving and starting, then repeat the command."""
    run_dir = tmp_path / "run"
    args = fit_args("slow", run_dir, 4, 2, "--seed", 11, "--save-every", 1)
    rng = random.Random(2026)
    moments = ["saving", "starting", "training", "saving", "training", "starting"]
    kills = 0
    for moment in moments:
        before = _checkpoints(run_dir) if run_dir.exists() else []
        proc = _start(args)
        try:
            if moment == "starting":
                time.sleep(rng.uniform(0.05, 1.5))  # interpreter, TF import, worker start
            elif moment == "saving":  # a checkpoint is being written: its temporary folder exists
                _wait_for(lambda: proc.poll() is not None or any(run_dir.glob(".tmp-*")), interval=0.002)
            else:
                _wait_for(lambda: proc.poll() is not None or _epochs_logged(run_dir) > 0)
                time.sleep(rng.uniform(0.0, 0.6))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
            proc.communicate()
        if proc.returncode == 0:
            break
        # Nothing complete was lost.
        after = _checkpoints(run_dir)
        complete_before = [n for n in before if (run_dir / n / "state.json").exists()]
        assert set(complete_before[-1:]) <= set(after) or not complete_before
    assert kills >= 5
    final = run_cli(*args)
    assert final.returncode == 0, final.stderr[-2000:]
    assert_bitwise_equal(final_variables(reference), final_variables(run_dir))
    # Every segment started from a checkpoint that was complete (checked by checksum) when loaded.
    for record in _segments(run_dir):
        if record["resumed_from"]:
            assert record["resumed_from"].startswith("ckpt-")


def _corrupt(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncate", "bitflip"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, reference, how):
    run_dir = tmp_path / "run"
    args = fit_args("slow", run_dir, 4, 2, "--seed", 11, "--save-every", 1, "--keep", 3,
                    "--isolation", "session")
    assert run_cli(*args).returncode == 0
    newest = run_dir / "ckpt-000004-end"
    _corrupt(newest / "model.keras", how)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["status"] = "running"  # as after a crash right after the final save
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "ckpt-000004-end" in again.stderr and "does not match its checksum" in again.stderr
    assert _segments(run_dir)[-1]["resumed_from"] == "ckpt-000003"
    assert_bitwise_equal(final_variables(reference), final_variables(run_dir))


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, reference):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    try:
        run_dir = mount / "run"
        args = fit_args("slow", run_dir, 4, 2, "--seed", 11, "--isolation", "session")
        first = run_cli(*fit_args("slow", run_dir, 4, 2, "--seed", 11, "--isolation", "session"),
                        timeout=300)
        assert first.returncode == 0
        shutil.rmtree(run_dir)
        # Train the first segment, then fill the disk before the second one saves.
        proc = _start(args)
        _wait_for(lambda: (run_dir / "ckpt-000002" / "state.json").exists())
        filler = mount / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err[-2000:]
        assert "No space left on device" in err and "previous complete checkpoint is intact" in err, err[-1500:]
        assert "Traceback" not in err
        assert (run_dir / "ckpt-000002" / "state.json").exists()
        filler.unlink()
        again = run_cli(*args)
        assert again.returncode == 0, again.stderr[-2000:]
        assert_bitwise_equal(final_variables(reference), final_variables(run_dir))
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_second_process_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    args = fit_args("slow", run_dir, 4, 2, "--isolation", "session")
    proc = _start(args)
    try:
        _wait_for(lambda: _epochs_logged(run_dir) >= 1)
        second = run_cli(*args)
        assert second.returncode == 1
        assert f"in use by another segtrain process (pid {proc.pid})" in " ".join(second.stderr.split())
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    (run_dir / "lock").write_text("999999\n")  # the holder is dead; its flock died with it
    third = run_cli(*args)
    assert third.returncode == 0, third.stderr[-2000:]


def test_changed_script_or_options_are_refused_and_force_starts_over(tmp_path):
    script = tmp_path / "model.py"
    shutil.copy(SCRIPTS / "dict_io.py", script)
    run_dir = tmp_path / "run"
    base = ["fit", script, "--epochs", 2, "--segment", 1, "--run-dir", run_dir, "--no-progress",
            "--isolation", "session"]
    assert run_cli(*base).returncode == 0
    records = len(_segments(run_dir))

    done = run_cli(*base)  # a finished run: report, exit 0, nothing trained
    assert done.returncode == 0 and "finished" in done.stderr
    assert len(_segments(run_dir)) == records

    changed_epochs = run_cli(*[a if a != 2 else 3 for a in base])
    assert changed_epochs.returncode == 2 and "epochs: 2 in the run, 3 now" in changed_epochs.stderr

    script.write_text(script.read_text() + "\n# changed\n")
    changed = run_cli(*base)
    assert changed.returncode == 2
    assert "changed since the run began" in " ".join(changed.stderr.split())
    forced = run_cli(*base, "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert len(_segments(run_dir)) == 2


@pytest.mark.parametrize("keep", [1, 3])
def test_keep_retains_the_newest_complete_checkpoints(tmp_path, keep):
    run_dir = tmp_path / "run"
    proc = run_cli(*fit_args("dict_io", run_dir, 5, 1, "--keep", keep, "--isolation", "session"))
    assert proc.returncode == 0
    expected = ["ckpt-000003", "ckpt-000004", "ckpt-000005-end"][-keep:]
    assert _checkpoints(run_dir) == expected


def test_resume_command_uses_the_saved_options(tmp_path, reference):
    run_dir = tmp_path / "run"
    proc = _start(fit_args("slow", run_dir, 4, 2, "--seed", 11))
    _wait_for(lambda: (run_dir / "ckpt-000002" / "state.json").exists())
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    resumed = run_cli("resume", run_dir, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_bitwise_equal(final_variables(reference), final_variables(run_dir))

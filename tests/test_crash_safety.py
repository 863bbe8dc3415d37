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
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    SCRIPTS,
    assert_bitwise_equal,
    assert_exit,
    cli_env,
    epochs_logged,
    final_variables,
    fit_args,
    one_line,
    run_cli,
    segtrain_cmd,
    wait_for,
)
from segtrain.paths import RunPaths
from segtrain.state import checkpoint

pytestmark = pytest.mark.slow


def _start(args: list) -> subprocess.Popen:
    return subprocess.Popen(
        segtrain_cmd(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        start_new_session=True,
    )


def _checkpoints(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.glob("ckpt-*"))


def _complete(run_dir: Path) -> list[str]:
    """The run's checkpoints that the project's own verification (every file's checksum) finds complete."""
    return [name for name in _checkpoints(run_dir) if checkpoint.is_complete(run_dir / name)[0]]


def _newest_complete(run_dir: Path) -> str | None:
    """The checkpoint a resume starts from: the newest complete one (`checkpoint.latest`)."""
    newest = checkpoint.latest(RunPaths(run_dir))
    return None if newest is None else newest.path.name


def _position(name: str) -> tuple[int, int, bool]:
    """(epochs done, batches into the next epoch, final) of a checkpoint name: ckpt-000002.000005-end."""
    match = re.fullmatch(r"ckpt-(\d{6})(?:\.(\d{6}))?(-end)?", name)
    assert match, name
    return int(match[1]), int(match[2] or 0), bool(match[3])


def _segments(run_dir: Path) -> list[dict]:
    path = run_dir / "segments.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:  # a line torn by SIGKILL; readers skip it
            continue
    return records


def _resumed_from(run_dir: Path, records_before: int) -> str | None:
    """The checkpoint that the first segment recorded after `records_before` records started from."""
    new = _segments(run_dir)[records_before:]
    assert new, "the command trained no segment"
    return new[0]["resumed_from"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of slow.py: 4 epochs in segments of 2, seed 11."""
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    assert_exit(run_cli(*fit_args("slow", run_dir, 4, 2, "--seed", 11, "--isolation", "session")), 0)
    return run_dir


def test_sigterm_mid_epoch_saves_exits_75_and_resumes_exactly(tmp_path, reference):
    run_dir = tmp_path / "run"
    args = fit_args("slow", run_dir, 4, 2, "--seed", 11)
    proc = _start(args)
    wait_for(lambda: epochs_logged(run_dir) >= 1, "the first epoch", proc)
    time.sleep(0.25)  # into the second epoch (50 batches of ~10 ms)
    os.kill(proc.pid, signal.SIGTERM)  # the supervisor: it must reach the worker
    out, err = proc.communicate(timeout=60)
    assert_exit(proc, 75, out, err)
    assert "resumable" in err
    # A complete checkpoint in the middle of the second epoch (1 epoch and some batches done) is the newest.
    mid_epoch = [name for name in _complete(run_dir) if name.startswith("ckpt-000001.")]
    assert mid_epoch, _checkpoints(run_dir)
    assert _newest_complete(run_dir) == mid_epoch[-1]
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"

    records = len(_segments(run_dir))
    again = run_cli(*args)  # the same command resumes, from that checkpoint
    assert_exit(again, 0)
    assert _resumed_from(run_dir, records) == mid_epoch[-1]
    assert_bitwise_equal(final_variables(reference), final_variables(run_dir))
    # Metric state was restored in the middle of the epoch: the history is the same too.
    assert json.loads((run_dir / "history.json").read_text()) == json.loads((reference / "history.json").read_text())


def test_second_sigint_aborts_at_once_and_the_last_checkpoint_stays_valid(tmp_path):
    """In process isolation: the worker is what a second Ctrl-C must kill at once."""
    run_dir = tmp_path / "run"
    args = fit_args("stall", run_dir, 4, 2, "--seed", 11)
    proc = _start(args)
    wait_for(lambda: (run_dir / "ckpt-000002" / "state.json").exists(), "the first checkpoint", proc)
    wait_for(lambda: epochs_logged(run_dir) >= 3, "the third epoch", proc)
    time.sleep(0.2)  # in epoch 4, whose batches sleep ~0.3 s each
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.02)  # two signals must not coalesce into one
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert_exit(proc, 130, out, err)
    assert _newest_complete(run_dir) == "ckpt-000002"  # verified by checksum, nothing newer committed
    records = len(_segments(run_dir))
    again = run_cli(*args)
    assert_exit(again, 0)
    assert _resumed_from(run_dir, records) == "ckpt-000002"
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "finished"


def test_chaos_sigkill_at_random_moments_then_exact(tmp_path, reference):
    """SIGKILL the whole process group while training, saving and starting, then repeat the command."""
    run_dir = tmp_path / "run"
    args = fit_args("slow", run_dir, 4, 2, "--seed", 11, "--save-every", 1)
    rng = random.Random(2026)
    moments = ["saving", "starting", "training", "saving", "training", "starting"]
    kills = 0
    for moment in moments:
        before = _newest_complete(run_dir) if run_dir.exists() else None
        records = len(_segments(run_dir))
        proc = _start(args)
        try:
            if moment == "starting":
                time.sleep(rng.uniform(0.05, 1.5))  # interpreter, TF import, worker start
            elif moment == "saving":  # a checkpoint is being written: its temporary folder exists
                wait_for(lambda p=proc: p.poll() is not None or any(run_dir.glob(".tmp-*")), "a save", interval=0.002)
            else:
                wait_for(lambda p=proc: p.poll() is not None or epochs_logged(run_dir) > 0, "the first epoch")
                time.sleep(rng.uniform(0.0, 0.6))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
            proc.communicate()
        # The attempt started from the newest complete checkpoint that there was: that one, by name.
        started = _segments(run_dir)[records:]
        if started:
            assert started[0]["resumed_from"] == before, (moment, before, started[0])
        if proc.returncode == 0:
            break
        # Nothing complete was lost: the newest complete checkpoint (checked by checksum) is still there,
        # or a newer complete one replaced it.
        after = _newest_complete(run_dir)
        if before is not None:
            assert after is not None, (moment, before, _checkpoints(run_dir))
            assert _position(after) >= _position(before), (moment, before, after)
            assert before in _complete(run_dir) or _position(after) > _position(before)
    assert kills >= 5
    expected = _newest_complete(run_dir)
    records = len(_segments(run_dir))
    final = run_cli(*args)
    assert_exit(final, 0)
    if expected is not None and _position(expected)[2]:
        assert len(_segments(run_dir)) == records, "a finished run trains nothing more"
    else:
        assert _resumed_from(run_dir, records) == expected
    assert_bitwise_equal(final_variables(reference), final_variables(run_dir))
    # Every segment started from the checkpoint at its first epoch: the one it was meant to resume from.
    for record in _segments(run_dir):
        if record["resumed_from"] is None:
            assert record["start_epoch"] == 0, record
        else:
            assert _position(record["resumed_from"])[0] == record["start_epoch"], record


def _flip_a_bit(path: Path) -> None:
    """Damage that keeps every size: only the checksums find it."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, reference):
    run_dir = tmp_path / "run"
    args = fit_args("slow", run_dir, 4, 2, "--seed", 11, "--save-every", 1, "--keep", 3, "--isolation", "session")
    assert_exit(run_cli(*args), 0)
    newest = run_dir / "ckpt-000004-end"
    assert checkpoint.is_complete(newest) == (True, "")
    _flip_a_bit(newest / "model.keras")
    assert checkpoint.is_complete(newest) == (False, "model.keras does not match its checksum (truncated or corrupted)")
    assert _newest_complete(run_dir) == "ckpt-000003"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["status"] = "running"  # as after a crash right after the final save
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    again = run_cli(*args)
    assert_exit(again, 0)
    assert "ckpt-000004-end" in again.stderr and "does not match its checksum" in again.stderr
    assert _segments(run_dir)[-1]["resumed_from"] == "ckpt-000003"
    assert_bitwise_equal(final_variables(reference), final_variables(run_dir))


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, reference):
    mount = tmp_path / "small"
    mount.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    try:
        run_dir = mount / "run"
        args = fit_args("slow", run_dir, 4, 2, "--seed", 11, "--isolation", "session")
        first = run_cli(*fit_args("slow", run_dir, 4, 2, "--seed", 11, "--isolation", "session"), timeout=300)
        assert_exit(first, 0)
        shutil.rmtree(run_dir)
        # Train the first segment, then fill the disk before the second one saves.
        proc = _start(args)
        wait_for(lambda: (run_dir / "ckpt-000002" / "state.json").exists(), "the first checkpoint", proc)
        filler = mount / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        out, err = proc.communicate(timeout=120)
        assert_exit(proc, 1, out, err)
        assert "No space left on device" in err and "previous complete checkpoint is intact" in err, err[-1500:]
        assert "Traceback" not in err
        assert _newest_complete(run_dir) == "ckpt-000002"
        filler.unlink()
        records = len(_segments(run_dir))
        again = run_cli(*args)
        assert_exit(again, 0)
        assert _resumed_from(run_dir, records) == "ckpt-000002"
        assert_bitwise_equal(final_variables(reference), final_variables(run_dir))
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_second_process_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    args = fit_args("slow", run_dir, 4, 2, "--isolation", "session")
    proc = _start(args)
    try:
        wait_for(lambda: epochs_logged(run_dir) >= 1, "the first epoch", proc)
        second = run_cli(*args)
        assert_exit(second, 1)
        assert f"in use by another segtrain process (pid {proc.pid})" in one_line(second.stderr)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    (run_dir / "lock").write_text("999999\n")  # the holder is dead; its flock died with it
    third = run_cli(*args)
    assert_exit(third, 0)


def test_changed_script_or_options_are_refused_and_force_starts_over(tmp_path):
    script = tmp_path / "model.py"
    shutil.copy(SCRIPTS / "dict_io.py", script)
    run_dir = tmp_path / "run"
    base = [
        "fit",
        script,
        "--epochs",
        2,
        "--segment",
        1,
        "--run-dir",
        run_dir,
        "--no-progress",
        "--isolation",
        "session",
    ]
    assert_exit(run_cli(*base), 0)
    records = len(_segments(run_dir))

    done = run_cli(*base)  # a finished run: report, exit 0, nothing trained
    assert_exit(done, 0)
    assert "finished" in done.stderr
    assert len(_segments(run_dir)) == records

    fewer_epochs = run_cli(*[a if a != 2 else 1 for a in base])  # more would extend it (test_fit_arguments.py)
    assert_exit(fewer_epochs, 2)
    assert "epochs: 1 now, but the run has trained 2 already (it may only grow)" in one_line(fewer_epochs.stderr)

    script.write_text(script.read_text() + "\n# changed\n")
    changed = run_cli(*base)
    assert_exit(changed, 2)
    assert "changed since the run began" in one_line(changed.stderr)
    forced = run_cli(*base, "--force")
    assert_exit(forced, 0)
    assert len(_segments(run_dir)) == 2


def test_keep_retains_the_newest_complete_checkpoints(tmp_path):
    """`--keep 2`: each older checkpoint goes once a newer one is complete."""
    run_dir = tmp_path / "run"
    proc = run_cli(*fit_args("dict_io", run_dir, 5, 1, "--keep", 2, "--isolation", "session"))
    assert_exit(proc, 0)
    expected = ["ckpt-000004", "ckpt-000005-end"]
    assert _checkpoints(run_dir) == expected
    assert _complete(run_dir) == expected


def test_resume_command_uses_the_saved_options(tmp_path, reference):
    run_dir = tmp_path / "run"
    proc = _start(fit_args("slow", run_dir, 4, 2, "--seed", 11))
    wait_for(lambda: (run_dir / "ckpt-000002" / "state.json").exists(), "the first checkpoint", proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert _newest_complete(run_dir) == "ckpt-000002"
    records = len(_segments(run_dir))
    resumed = run_cli("resume", run_dir, "--no-progress")
    assert_exit(resumed, 0)
    assert _resumed_from(run_dir, records) == "ckpt-000002"
    assert_bitwise_equal(final_variables(reference), final_variables(run_dir))

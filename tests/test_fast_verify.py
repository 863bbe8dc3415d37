"""`segtrain status` and `ls` read a checkpoint's recorded state and sizes only; `segtrain verify` reads every byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import segtrain
from conftest import assert_exit
from segtrain.cli import app
from segtrain.errors import ConfigError
from segtrain.state import atomic
from support.runs import FakeRun

cli = CliRunner()


def _run(root: Path) -> FakeRun:
    run = FakeRun(root, 30, 10)
    run.segments(0, 2)
    run.checkpoint(10)
    run.checkpoint(20)
    run.write(status="interrupted")
    return run


def _corrupt(model: Path) -> None:
    """Flip bytes inside the file, keeping its size: only its checksum can tell."""
    data = bytearray(model.read_bytes())
    data[10:20] = bytes(10)
    model.write_bytes(bytes(data))


def _status_checkpoint(run_dir: Path) -> str:
    result = cli.invoke(app, ["status", str(run_dir), "--json"])
    assert_exit(result, 0)
    return json.loads(result.stdout)["checkpoint"]["name"]


def _verify(run_dir: Path, code: int) -> list[str]:
    result = cli.invoke(app, ["verify", str(run_dir)], env={"COLUMNS": "200"})
    assert_exit(result, code)
    return result.stdout.splitlines()


def test_verify_of_a_sound_run_exits_0(tmp_path):
    run = _run(tmp_path / "run")
    assert _verify(run.root, 0) == [
        "ckpt-000010  complete",
        "ckpt-000020  complete",
        "All 2 checkpoints are complete; a resume goes on from ckpt-000020.",
    ]
    found = segtrain.verify(run.root)
    assert (found.resume_from, found.exit_code, found.damaged) == ("ckpt-000020", 0, [])


def test_status_reads_no_checkpoint_bytes_and_verify_finds_a_corrupted_file(tmp_path, monkeypatch):
    run = _run(tmp_path / "run")
    _corrupt(run.root / "ckpt-000020" / "model.keras")
    with monkeypatch.context() as m:  # status computes no checksum at all
        m.setattr(atomic, "file_digest", lambda path: pytest.fail(f"status read {path} whole"))
        assert _status_checkpoint(run.root) == "ckpt-000020"  # its sizes match: status cannot tell
        result = cli.invoke(app, ["ls", str(tmp_path), "--json"])
        assert_exit(result, 0)
        assert [e["state"] for e in json.loads(result.stdout)] == ["interrupted"]
    assert _verify(run.root, 1) == [
        "ckpt-000010  complete",
        "ckpt-000020  damaged: model.keras does not match its checksum (truncated or corrupted)",
        "1 of 2 checkpoints damaged (ckpt-000020); a resume goes on from ckpt-000010.",
    ]
    result = cli.invoke(app, ["verify", str(run.root), "--json"])
    assert_exit(result, 1)
    assert json.loads(result.stdout)["resume_from"] == "ckpt-000010"


def test_status_and_verify_both_see_a_truncated_file(tmp_path):
    run = _run(tmp_path / "run")
    model = run.root / "ckpt-000020" / "model.keras"
    model.write_bytes(model.read_bytes()[:100])
    assert _status_checkpoint(run.root) == "ckpt-000010"  # the recorded size tells
    assert _verify(run.root, 1)[1:] == [
        "ckpt-000020  damaged: model.keras does not match its checksum (truncated or corrupted)",
        "1 of 2 checkpoints damaged (ckpt-000020); a resume goes on from ckpt-000010.",
    ]


def test_verify_with_no_complete_checkpoint_and_of_no_run(tmp_path):
    run = _run(tmp_path / "run")
    for name in ("ckpt-000010", "ckpt-000020"):
        (run.root / name / "model.keras").unlink()
    assert (
        _verify(run.root, 1)[-1]
        == "2 of 2 checkpoints damaged (ckpt-000010, ckpt-000020); none is complete: a resume starts over."
    )
    result = cli.invoke(app, ["verify", str(tmp_path / "nothing")])
    assert_exit(result, 2)
    with pytest.raises(ConfigError):
        segtrain.verify(tmp_path)

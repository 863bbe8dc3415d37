"""A run directory that earlier segtrain wrote (commit 32995aa, tests/fixtures/run-32995aa) reads, loads and resumes.

The fixture is that code's `segtrain fit fixture_mlp.py --epochs 4 --segment 2 --seed 7`, as it left it (less its
lock and worker logs); the script it recorded is gone, so its own copy (`script/`) stands in. Extended to 6
epochs, it equals a run of 6 epochs made now, bit for bit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import assert_bitwise_equal, assert_exit, final_variables, run_cli
from segtrain.cli import app

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "run-32995aa"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    run_dir = tmp_path / "legacy"
    shutil.copytree(FIXTURE, run_dir)
    return run_dir


def test_status_report_ls_and_verify_read_an_earlier_run(legacy):
    cli = CliRunner()
    status = cli.invoke(app, ["status", str(legacy), "--json"])
    assert_exit(status, 0)
    assert json.loads(status.stdout)["status"] == "finished"
    report = cli.invoke(app, ["report", str(legacy), "--json"])
    assert_exit(report, 0)
    assert json.loads(report.stdout)["epochs_done"] == 4
    listing = cli.invoke(app, ["ls", str(legacy.parent), "--json"])
    assert_exit(listing, 0)
    assert [Path(entry["path"]).name for entry in json.loads(listing.stdout)] == ["legacy"]
    assert_exit(cli.invoke(app, ["verify", str(legacy)]), 0)


@pytest.mark.slow
def test_an_earlier_run_loads_and_resumes_bitwise(legacy, tmp_path):
    import segtrain

    model = segtrain.load_model(legacy)
    assert int(model.optimizer.iterations.numpy()) == 4 * 5  # 80 samples in batches of 16, 4 epochs

    resumed = run_cli("resume", legacy, "--epochs", 6, "--no-progress")
    assert_exit(resumed, 0)
    script = tmp_path / "fixture_mlp.py"
    shutil.copy(FIXTURE / "script" / "fixture_mlp.py", script)
    now = run_cli(
        "fit", script, "--epochs", 6, "--segment", 2, "--seed", 7, "--run-dir", tmp_path / "now", "--no-progress"
    )
    assert_exit(now, 0)
    assert_bitwise_equal(final_variables(tmp_path / "now"), final_variables(legacy))
    history = json.loads((legacy / "history.json").read_text())
    assert history == json.loads((tmp_path / "now" / "history.json").read_text()) and len(history["loss"]) == 6

"""`segtrain report` and `status` on a sweep directory, from a fixture study and fixture trial runs (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from optuna.trial import TrialState
from typer.testing import CliRunner

from conftest import SCRIPTS, assert_exit
from segtrain.cli import app
from segtrain.config import RunConfig
from segtrain.search import claims
from segtrain.search.config import SweepConfig, open_sweep
from segtrain.search.report import run_dir_of
from support.runs import FakeRun

cli = CliRunner()


def sweep_fixture(root: Path) -> Path:
    """A sweep of 4 trials: two complete (trial 2 the best), one pruned, one failed; each with its run."""
    cfg = SweepConfig(run=RunConfig(script=SCRIPTS / "sweep_mlp.py", epochs=4, segment=2), trials=4, sweep_dir=root)
    manifest = open_sweep(cfg)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=cfg.storage_url, study_name=cfg.study_name, direction="minimize")
    plan = [
        (TrialState.COMPLETE, 0.31, 4),
        (TrialState.PRUNED, None, 2),
        (TrialState.COMPLETE, 0.12, 4),
        (TrialState.FAIL, None, 1),
    ]
    for state, value, epochs in plan:
        trial = study.ask()
        units = trial.suggest_int("units", 4, 16)
        trial.set_user_attr(claims.SWEEP_ATTR, manifest["token"])
        trial.set_user_attr(claims.PARAMS_ATTR, {"units": units, "kind": "good"})
        run = FakeRun(claims.trial_dir(root, trial.number), 4, 2)
        run.segments(0, (epochs - 1) // 2)
        run.write()
        if state == TrialState.COMPLETE:
            trial.set_user_attr(claims.BEST_EPOCH_ATTR, 3)
            study.tell(trial, value)
        elif state == TrialState.PRUNED:
            trial.report(0.9, 1)
            trial.set_user_attr(claims.PRUNED_ATTR, "stopped early: pruned by Optuna's median pruner after epoch 2")
            study.tell(trial, state=TrialState.PRUNED)
        else:
            trial.set_user_attr(claims.ERROR_ATTR, "loss became nan in epoch 1")
            study.tell(trial, state=TrialState.FAIL)
    return root


def test_the_json_report_has_a_row_per_trial_and_the_best(tmp_path):
    root = sweep_fixture(tmp_path / "sweep")
    result = cli.invoke(app, ["report", str(root), "--json"])
    assert_exit(result, 0)
    rep = json.loads(result.stdout)
    rows = [(t["number"], t["state"], t["value"], t["epochs_done"], t["params"]["kind"]) for t in rep["trials"]]
    assert rows == [
        (0, "COMPLETE", 0.31, 4, "good"),
        (1, "PRUNED", 0.9, 2, "good"),
        (2, "COMPLETE", 0.12, 4, "good"),
        (3, "FAIL", None, 2, "good"),
    ]
    assert rep["best"]["number"] == 2 and rep["best"]["value"] == 0.12
    assert rep["best"]["run_dir"] == str(root / "trials" / "trial-0002")
    assert rep["trials"][1]["reason"].startswith("stopped early: pruned") and rep["trials"][3]["reason"].startswith(
        "loss became nan"
    )
    assert rep["finished"] == 3 and rep["trials_wanted"] == 4 and rep["metric"] == "val_loss"
    assert all(t["peak_rss_mb"] > 0 and t["seconds"] > 0 for t in rep["trials"])
    assert run_dir_of(root) == root / "trials" / "trial-0002"


def test_the_table_marks_the_best_trial_and_says_why_others_ended(tmp_path):
    root = sweep_fixture(tmp_path / "sweep")
    result = cli.invoke(app, ["report", str(root)], env={"COLUMNS": "160"})
    assert_exit(result, 0)
    out = result.stdout
    best = next(line for line in out.splitlines() if "★" in line)
    assert best.split()[:4] == ["★", "2", "complete", "0.12"]
    assert "trial 1 pruned: stopped early: pruned by Optuna's median pruner after epoch 2" in out
    assert "trial 3 fail: loss became nan in epoch 1" in out
    assert "3/4 trials finished (minimize val_loss); best: trial 2, val_loss 0.12" in out
    status = cli.invoke(app, ["status", str(root), "--json"])
    assert_exit(status, 0)
    assert json.loads(status.stdout)["best"]["number"] == 2


def test_the_plot_draws_value_rss_and_seconds_per_trial(tmp_path):
    root = sweep_fixture(tmp_path / "sweep")
    png = tmp_path / "sweep.png"
    result = cli.invoke(app, ["report", str(root), "--plot", str(png)])
    assert_exit(result, 0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_a_study_with_a_password_needs_storage_given(tmp_path):
    root = sweep_fixture(tmp_path / "sweep")
    manifest = json.loads((root / "sweep.json").read_text())
    manifest["config"]["storage"] = "postgresql://user:***@db/sweeps"
    (root / "sweep.json").write_text(json.dumps(manifest))
    result = cli.invoke(app, ["report", str(root)])
    assert_exit(result, 2)
    assert "give its URL with the password, --storage URL" in " ".join(result.stderr.split())


def test_a_runs_report_shows_its_params(tmp_path):
    run = FakeRun(tmp_path / "run", 4, 2)
    run.segments(0, 1)
    run_dir = run.write()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["config"]["params"] = {"units": 64, "act": "relu"}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    result = cli.invoke(app, ["report", str(run_dir), "--json"])
    assert_exit(result, 0)
    assert json.loads(result.stdout)["params"] == {"units": 64, "act": "relu"}
    table = cli.invoke(app, ["report", str(run_dir)], env={"COLUMNS": "200"})
    assert "params units=64, act=relu" in table.stdout

"""Run management: `segtrain ls`, `segtrain export`, and run directories that carry their own script.

The fast tests write run directories with tests/support/runs.py (no training) or call `open_run` on a
script that is only hashed. The slow ones train: a run moved elsewhere with its original script deleted
is loaded, exported and resumed from the run's copy; a changed script is loaded from the copy with a
warning, and `resume` refuses it; an older checkpoint is exported by name.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT, SCRIPTS, assert_exit, cli_env, one_line, run_cli, segtrain_cmd, wait_for
from segtrain.cli import app
from segtrain.config import RunConfig
from segtrain.errors import ConfigError, ScriptError
from segtrain.paths import RunPaths
from segtrain.runs import script_copy
from segtrain.runs.directory import load_config, open_run
from segtrain.runs.paths import RunLock
from segtrain.search import listing
from segtrain.state import atomic, checkpoint
from support.runs import FakeRun

runner = CliRunner()
WIDE = {"COLUMNS": "220"}
MIB = 1024 * 1024


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], env=WIDE)


def _age(path: Path, seconds: float) -> None:
    """Make the run's manifest and epoch log look last written `seconds` ago."""
    then = time.time() - seconds
    for name in ("manifest.json", "epochs.jsonl"):
        os.utime(path / name, (then, then))


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- segtrain ls: fixtures written by FakeRun, no training -----------------------------------------------


def _finished(path: Path) -> Path:
    run = FakeRun(path, 4, 2)
    run.segments(0, 1)
    run.checkpoint(2)
    run.checkpoint(4, final=True)
    run.write(status="finished", stop_reason="finished all 4 epochs")
    (path / "ckpt-000004-end" / "blob.bin").write_bytes(b"\0" * (3 * MIB))  # a size worth showing
    return path


def _crashed(path: Path) -> Path:
    """Recorded as running, 3 of 6 epochs logged, and no process holds its lock: crashed."""
    run = FakeRun(path, 6, 2)
    run.segments(0, 0)
    run.attempt(1, 2, 3, recorded=False)
    run.checkpoint(2)
    return run.write(status="running")


def _sweep(path: Path) -> Path:
    """A sweep that wants 3 trials: one finished, one pruned (stopped after 2 of 4 epochs)."""
    path.mkdir(parents=True)
    manifest = {
        "token": "0123456789abcdef",
        "study": "mlp",
        "script": {"path": "/elsewhere/sweep_mlp.py", "sha256": "0" * 64},
        "config": {"trials": 3, "metric": "val_loss", "run": {"epochs": 4}},
    }
    (path / "sweep.json").write_text(json.dumps(manifest))
    done = FakeRun(path / "trials" / "trial-0000", 4, 2)
    done.segments(0, 1)
    done.write(status="finished")
    pruned = FakeRun(path / "trials" / "trial-0001", 4, 2)
    pruned.attempt(0, 0, 2, outcome="stopped", stop_reason="pruned at epoch 2")
    pruned.write(status="stopped", stop_reason="stopped early: pruned at epoch 2")
    return path


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "checkpoints"
    _age(_finished(root / "spirals"), 180)
    _age(_crashed(root / "team" / "leaky"), 7200)
    _sweep(root / "mlp-sweep")
    return root


def test_ls_lists_each_run_with_its_state_epochs_activity_and_size(runs):
    found = {Path(e.path).relative_to(runs).as_posix(): e for e in listing.list_runs(runs)}
    assert sorted(found) == ["mlp-sweep", "spirals", "team/leaky"]  # trials are not rows of their own

    spirals = found["spirals"]
    assert (spirals.kind, spirals.state, spirals.epochs_done, spirals.epochs_total) == ("run", "finished", 4, 4)
    assert spirals.size_bytes == _tree_size(runs / "spirals") and spirals.size_bytes > 3 * MIB
    assert spirals.age_seconds is not None and 175 < spirals.age_seconds < 240
    assert spirals.script == "leaky.py"

    leaky = found["team/leaky"]
    assert (leaky.kind, leaky.state, leaky.epochs_done, leaky.epochs_total) == ("run", "crashed", 3, 6)
    assert leaky.age_seconds is not None and 7190 < leaky.age_seconds < 7260

    sweep = found["mlp-sweep"]
    assert (sweep.kind, sweep.state, sweep.epochs_done, sweep.epochs_total) == ("sweep", "interrupted", 6, None)
    assert (sweep.runs_done, sweep.runs_total, sweep.script) == (2, 3, "sweep_mlp.py")
    assert sweep.size_bytes == _tree_size(runs / "mlp-sweep")


def test_ls_table(runs):
    result = invoke("ls", runs)
    assert_exit(result, 0)
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if str(runs) in line}
    assert rows[str(runs / "spirals")][1:] == ["run", "finished", "4/4", "3", "min", "ago", "3.0", "MiB"]
    assert rows[str(runs / "team" / "leaky")][1:5] == ["run", "crashed", "3/6", "2"]
    assert rows[str(runs / "mlp-sweep")][1:8] == ["sweep", "interrupted", "6", "(2/3", "trials", "done)", "just"]


def test_ls_json(runs):
    result = invoke("ls", runs, "--json")
    assert_exit(result, 0)
    entries = json.loads(result.stdout)
    assert [e["path"] for e in entries] == [str(runs / n) for n in ("mlp-sweep", "spirals", "team/leaky")]
    spirals = entries[1]
    assert set(spirals) == {
        "path",
        "kind",
        "state",
        "epochs_done",
        "epochs_total",
        "runs_done",
        "runs_total",
        "last_activity",
        "age_seconds",
        "size_bytes",
        "script",
        "error",
    }
    assert spirals["state"] == "finished" and spirals["size_bytes"] == _tree_size(runs / "spirals")
    assert spirals["last_activity"] == pytest.approx((runs / "spirals" / "epochs.jsonl").stat().st_mtime)
    assert entries[2]["state"] == "crashed" and entries[0]["runs_done"] == 2


def test_ls_says_running_while_a_process_holds_the_lock(tmp_path):
    path = _crashed(tmp_path / "run")
    with RunLock(RunPaths(path)):
        assert [e.state for e in listing.list_runs(tmp_path)] == ["running"]
    assert [e.state for e in listing.list_runs(tmp_path)] == ["crashed"]


def test_a_cv_is_one_row_and_finished_once_every_fold_is(tmp_path):
    cv = tmp_path / "mlp-cv"
    cv.mkdir()
    manifest = {"split_seed": 1, "script": {"path": "/x/cv_mlp.py"}, "config": {"folds": 2, "run": {"epochs": 2}}}
    (cv / "cv.json").write_text(json.dumps(manifest))
    for k in range(2):
        fold = FakeRun(cv / "folds" / f"fold-{k}", 2, 2)
        fold.segments(0, 0)
        fold.write(status="finished")
    [entry] = listing.list_runs(tmp_path)
    assert (entry.kind, entry.state, entry.epochs_done, entry.epochs_total, entry.runs_done) == (
        "cv",
        "finished",
        4,
        4,
        2,
    )


def test_ls_of_the_run_itself_and_an_unreadable_manifest(tmp_path):
    path = _finished(tmp_path / "a")
    assert [e.path for e in listing.list_runs(path)] == [str(path)]
    broken = tmp_path / "b"
    broken.mkdir()
    (broken / "manifest.json").write_text("{ not JSON")
    entries = listing.list_runs(tmp_path)
    assert [(e.path, e.state) for e in entries] == [(str(path), "finished"), (str(broken), "unreadable")]
    assert entries[1].error is not None and "cannot be read" in entries[1].error


def test_ls_of_an_empty_folder_and_of_a_missing_one(tmp_path):
    result = invoke("ls", tmp_path)
    assert_exit(result, 0)
    assert result.stderr.strip() == f"No runs under {tmp_path}."
    missing = tmp_path / "nope"
    result = invoke("ls", missing)
    assert_exit(result, 2)
    assert f"{missing} does not exist" in one_line(result.stderr)


def test_ls_imports_no_framework(runs):
    code = textwrap.dedent(f"""
        import sys
        from typer.testing import CliRunner
        from segtrain.cli import app

        for args in (["ls", {str(runs)!r}], ["ls", {str(runs)!r}, "--json"]):
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, result.output
        print(sorted(m for m in ("tensorflow", "keras", "jax", "torch") if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "[]", "segtrain ls imported a framework"


def test_human_figures():
    assert [listing.ago(s) for s in (None, 5, 185, 7200, 3 * 86400)] == [
        "–",
        "just now",
        "3 min ago",
        "2 h ago",
        "3 d ago",
    ]
    assert [listing.human_size(n) for n in (812, 1536, 3 * MIB, 5 * 1024**3)] == [
        "812 B",
        "1.5 KiB",
        "3.0 MiB",
        "5.0 GiB",
    ]


# -- segtrain export: checkpoint names checked before anything is imported ------------------------------


@pytest.mark.parametrize(
    "name, why",
    [
        ("ckpt-000003", "no such checkpoint"),
        ("../spirals", "no such checkpoint"),
        ("ckpt-000002", "model.keras does not match its checksum (truncated or corrupted)"),
    ],
)
def test_export_of_a_name_that_is_no_complete_checkpoint_exits_2_listing_the_complete_ones(tmp_path, name, why):
    run = FakeRun(tmp_path / "run", 4, 2)
    run.segments(0, 1)
    run.checkpoint(2, damaged=True)
    run.checkpoint(4)
    run.checkpoint(4, final=True)
    path = run.write()
    result = invoke("export", path, tmp_path / "out.keras", "--checkpoint", name)
    assert_exit(result, 2)
    message = one_line(result.stderr)
    assert f"{name} is not a complete checkpoint of {path} ({why})" in message, message
    assert "Its complete checkpoints: ckpt-000004, ckpt-000004-end." in message, message
    assert not (tmp_path / "out.keras").exists()


def test_export_of_a_directory_that_holds_no_run_exits_2(tmp_path):
    result = invoke("export", tmp_path, tmp_path / "out.keras")
    assert_exit(result, 2)
    assert f"{tmp_path} is not a segtrain run directory" in one_line(result.stderr)


# -- the run's copy of its script: open_run, load_config, which file loading imports --------------------

SCRIPT = "def build_model():\n    pass\n\n\ndef load_data():\n    pass\n"


def _cfg(script: Path, run_dir: Path, **more) -> RunConfig:
    return RunConfig(script=script, epochs=4, segment=2, run_dir=run_dir, **more)


@pytest.fixture
def started(tmp_path: Path) -> tuple[Path, Path]:
    """A run opened (manifest and copy written, nothing trained) from src/model.py."""
    script = tmp_path / "src" / "model.py"
    script.parent.mkdir()
    script.write_text(SCRIPT)
    open_run(_cfg(script, tmp_path / "run"))
    return script, tmp_path / "run"


def test_a_new_run_keeps_a_copy_of_its_script_with_the_manifests_sha256(started):
    script, run_dir = started
    manifest = json.loads((run_dir / "manifest.json").read_text())
    copy = run_dir / "script" / "model.py"
    assert manifest["script"] == {
        "path": str(script.resolve()),
        "sha256": script_copy.sha256(SCRIPT.encode()),
        "copy": "script/model.py",
    }
    assert copy.read_bytes() == script.read_bytes()
    assert sorted(p.name for p in copy.parent.iterdir()) == ["model.py"]


def test_force_with_another_script_replaces_the_copy(started, tmp_path):
    _, run_dir = started
    other = tmp_path / "src" / "other.py"
    other.write_text(SCRIPT + "# changed\n")
    with pytest.raises(ConfigError, match="holds a run with other settings"):
        open_run(_cfg(other, run_dir))
    manifest = open_run(_cfg(other, run_dir, force=True))
    assert manifest["script"]["copy"] == "script/other.py"
    assert sorted(p.name for p in (run_dir / "script").iterdir()) == ["other.py"]
    assert script_copy.sha256((run_dir / "script" / "other.py").read_bytes()) == manifest["script"]["sha256"]


def test_a_changed_script_is_refused_naming_the_copy(started):
    script, run_dir = started
    script.write_text(SCRIPT + "# changed\n")
    with pytest.raises(ConfigError) as refused:
        open_run(load_config(run_dir))
    message = str(refused.value)
    assert (
        f"the script {script.resolve()} changed since the run began (SHA-256 differs; the run keeps the script it "
        in message
    )
    assert f"began with in {run_dir / 'script' / 'model.py'})" in message
    assert (run_dir / "script" / "model.py").read_text() == SCRIPT  # the copy is the run's, untouched


def test_resume_never_takes_force_from_the_manifest(started, tmp_path):
    script, _ = started
    run_dir = tmp_path / "forced"
    open_run(_cfg(script, run_dir, force=True))
    assert json.loads((run_dir / "manifest.json").read_text())["config"]["force"] is True
    script.write_text(SCRIPT + "# changed\n")
    with pytest.raises(ConfigError, match="changed since the run began"):
        open_run(load_config(run_dir))  # not wiped: refused
    assert (run_dir / "manifest.json").exists()


def test_resume_uses_the_copy_where_the_original_is_gone_and_keeps_the_original_recorded(started, tmp_path):
    script, run_dir = started
    moved = tmp_path / "laptop" / "run"
    shutil.move(run_dir, moved)
    script.unlink()
    cfg = load_config(moved)
    assert cfg.script == moved / "script" / "model.py" and cfg.run_dir == moved
    manifest = open_run(cfg)  # the copy's SHA-256 is the manifest's: accepted
    assert manifest["script"]["path"] == str(script.resolve())
    assert manifest["config"]["script"] == str(script.resolve())
    assert json.loads((moved / "manifest.json").read_text())["script"]["path"] == str(script.resolve())


def test_resume_with_neither_the_original_nor_a_copy_says_so(started):
    script, run_dir = started
    script.unlink()
    shutil.rmtree(run_dir / "script")
    with pytest.raises(ScriptError) as missing:
        load_config(run_dir)
    assert f"The training script of {run_dir}, {script.resolve()}, is not there, and the run keeps no copy" in str(
        missing.value
    )
    assert missing.value.exit_code == 2


def test_a_run_made_before_copies_were_kept_gets_one_when_it_goes_on(started):
    script, run_dir = started
    manifest = json.loads((run_dir / "manifest.json").read_text())
    del manifest["script"]["copy"]
    atomic.write_json(run_dir / "manifest.json", manifest)
    shutil.rmtree(run_dir / "script")
    open_run(load_config(run_dir))
    assert json.loads((run_dir / "manifest.json").read_text())["script"]["copy"] == "script/model.py"
    assert (run_dir / "script" / "model.py").read_bytes() == script.read_bytes()


def test_loading_imports_the_original_while_it_is_the_one_the_run_trained_with(started, caplog):
    script, run_dir = started
    paths = RunPaths(run_dir)
    manifest = json.loads(paths.manifest.read_text())
    with caplog.at_level(logging.INFO, logger="segtrain"):
        assert script_copy.to_load(paths, manifest) == script.resolve()
    assert not caplog.records


def test_loading_a_changed_script_warns_once_naming_both_and_imports_the_copy(started, caplog):
    script, run_dir = started
    script.write_text(SCRIPT + "raise SystemExit('the changed script was imported')\n")
    paths = RunPaths(run_dir)
    with caplog.at_level(logging.INFO, logger="segtrain"):
        chosen = script_copy.to_load(paths, json.loads(paths.manifest.read_text()))
    assert chosen == run_dir / "script" / "model.py"
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"{script.resolve()} changed since the run in {run_dir} trained (its SHA-256 is not the manifest's): "
        f"loading with the run's copy of the script it trained with, {chosen}."
    )


def test_loading_where_the_original_is_gone_uses_the_copy_quietly(started, caplog):
    script, run_dir = started
    script.unlink()
    paths = RunPaths(run_dir)
    with caplog.at_level(logging.INFO, logger="segtrain"):
        chosen = script_copy.to_load(paths, json.loads(paths.manifest.read_text()))
    assert chosen == run_dir / "script" / "model.py"
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_a_file_that_is_not_the_one_the_run_trained_with_is_imported_only_with_a_warning(started, caplog):
    script, run_dir = started
    paths = RunPaths(run_dir)
    manifest = json.loads(paths.manifest.read_text())
    (run_dir / "script" / "model.py").write_text(SCRIPT + "# edited in the run directory\n")
    script.write_text(SCRIPT + "# changed\n")
    with caplog.at_level(logging.INFO, logger="segtrain"):
        assert script_copy.to_load(paths, manifest) == script.resolve()
    script.unlink()
    with caplog.at_level(logging.INFO, logger="segtrain"):
        assert script_copy.to_load(paths, manifest) == run_dir / "script" / "model.py"
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    assert "is not the script it trained with either" in caplog.records[0].getMessage()
    assert "importing it anyway" in caplog.records[1].getMessage()


# -- through real runs --------------------------------------------------------------------------------


def _segtrain_news(caplog) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("segtrain")]


def _variables(model) -> list:
    return [v.numpy() for v in model.weights] + [v.numpy() for v in model.optimizer.variables]


def _assert_same_variables(a, b) -> None:
    import numpy as np

    left, right = _variables(a), _variables(b)
    assert len(left) == len(right)
    for i, (x, y) in enumerate(zip(left, right, strict=True)):
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), f"variable {i} differs"


@pytest.mark.slow
def test_a_run_moved_elsewhere_with_its_script_deleted_loads_exports_and_resumes(tmp_path, caplog):
    import keras
    import numpy as np
    import tensorflow as tf

    import segtrain

    script = tmp_path / "project" / "slow.py"
    script.parent.mkdir()
    shutil.copy(SCRIPTS / "slow.py", script)
    run_dir = tmp_path / "cluster" / "run"
    args = ["fit", script, "--epochs", 4, "--segment", 2, "--run-dir", run_dir, "--seed", 3, "--no-progress"]
    proc = subprocess.Popen(
        segtrain_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env()
    )
    wait_for((run_dir / "ckpt-000002" / "state.json").exists, "the first segment's checkpoint", proc, timeout=240)
    proc.send_signal(signal.SIGTERM)  # in the second segment's 2 epochs of ~0.5 s
    out, err = proc.communicate(timeout=120)
    assert_exit(proc, 75, out, err)
    assert not list(run_dir.glob("ckpt-*-end")), "the run finished before the signal"

    moved = tmp_path / "laptop" / "run"
    shutil.move(run_dir, moved)
    script.unlink()

    with caplog.at_level(logging.INFO, logger="segtrain"):
        model = segtrain.load_model(moved)
    copy = moved / "script" / "slow.py"
    assert _segtrain_news(caplog) == [
        (logging.INFO, f"{script} is not there: loading with the run's copy of the script, {copy}.")
    ]

    newest = checkpoint.latest(RunPaths(moved))
    assert newest is not None and newest.epoch == 2  # at the boundary, or inside epoch 3 (the signal's)
    trained = "2 epochs" + (
        f" and {newest.batch} batches" if newest.batch > 1 else " and 1 batch" if newest.batch else ""
    )
    keras_file, served = tmp_path / "out" / "model.keras", tmp_path / "out" / "served"
    for target, what in ((keras_file, "a .keras file"), (served, "a SavedModel directory")):
        done = run_cli("export", moved, target)
        assert_exit(done, 0)
        told = one_line(done.stderr)
        assert f"Exported {newest.path.name} of {moved} (after {trained}) to {target}, {what}." in told, told
    _assert_same_variables(keras.saving.load_model(keras_file), model)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    loaded = tf.saved_model.load(str(served))  # kept: its functions reference its variables
    served_y = loaded.serve(x).numpy()
    assert np.allclose(served_y, model(x, training=False).numpy(), rtol=1e-6, atol=1e-6)

    resumed = run_cli("resume", moved, "--no-progress")
    assert_exit(resumed, 0)
    manifest = json.loads((moved / "manifest.json").read_text())
    assert (manifest["status"], manifest["epochs_done"]) == ("finished", 4)
    assert manifest["script"]["path"] == str(script) and manifest["script"]["copy"] == "script/slow.py"
    assert (moved / "ckpt-000004-end").is_dir() and not script.exists()
    assert int(segtrain.load_model(moved).optimizer.iterations.numpy()) == 4 * 50  # 400 samples, batches of 8


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """dict_io.py, copied to src/, trained 3 epochs in segments of 1 (one process), every checkpoint kept."""
    root = tmp_path_factory.mktemp("finished")
    script = root / "src" / "dict_io.py"
    script.parent.mkdir()
    shutil.copy(SCRIPTS / "dict_io.py", script)
    run_dir = root / "run"
    args = ["fit", script, "--epochs", 3, "--segment", 1, "--run-dir", run_dir, "--seed", 0, "--keep", 5]
    assert_exit(run_cli(*args, "--isolation", "session", "--no-progress"), 0)
    return script, run_dir


@pytest.mark.slow
def test_export_of_an_older_checkpoint_by_name(finished, tmp_path):
    import keras

    import segtrain

    _, run_dir = finished
    assert {"ckpt-000001", "ckpt-000002"} <= {p.name for p in run_dir.glob("ckpt-*")}
    target = tmp_path / "older.keras"
    done = run_cli("export", run_dir, target, "--checkpoint", "ckpt-000001")
    assert_exit(done, 0)
    assert f"Exported ckpt-000001 of {run_dir} (after 1 epoch) to {target}, a .keras file." in one_line(done.stderr)
    older = segtrain.load_model(run_dir, checkpoint="ckpt-000001")
    _assert_same_variables(keras.saving.load_model(target), older)
    assert int(older.optimizer.iterations.numpy()) == 8  # one epoch: 120 samples in batches of 16
    assert int(segtrain.load_model(run_dir).optimizer.iterations.numpy()) == 24


@pytest.mark.slow
def test_a_changed_script_loads_with_the_runs_copy_and_a_warning_and_resume_refuses_it(finished, tmp_path, caplog):
    import segtrain

    script, run_dir = finished
    copy = run_dir / "script" / "dict_io.py"
    original = script.read_text()
    script.write_text(original + "\nraise RuntimeError('the changed script was imported')\n")
    warning = (
        f"{script} changed since the run in {run_dir} trained (its SHA-256 is not the manifest's): "
        f"loading with the run's copy of the script it trained with, {copy}."
    )
    try:
        with caplog.at_level(logging.INFO, logger="segtrain"):
            model = segtrain.load_model(run_dir)
        assert _segtrain_news(caplog) == [(logging.WARNING, warning)]
        assert int(model.optimizer.iterations.numpy()) == 24

        done = run_cli("export", run_dir, tmp_path / "m.keras")
        assert_exit(done, 0)
        assert warning in one_line(done.stderr)

        refused = run_cli("resume", run_dir, "--no-progress")
        assert_exit(refused, 2)
        assert (
            f"the script {script} changed since the run began (SHA-256 differs; the run keeps the script it began "
            f"with in {copy})" in one_line(refused.stderr)
        )
        assert copy.read_text() == original
    finally:
        script.write_text(original)


LOADS_SCRIPT = """
import os

import keras
import numpy as np

fit_kwargs = {"batch_size": 16}


@keras.saving.register_keras_serializable(package="segtrain_test_loads")
class Net(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x)


def load_data():
    if os.environ.get("LOAD_LOG"):
        with open(os.environ["LOAD_LOG"], "a") as f:
            f.write("load\\n")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    return x, x[:, :1] * 2


def build_model(params):
    model = Net() if params["kind"] == "subclassed" else keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind, loads", [("functional", 0), ("subclassed", 1)])
def test_load_model_reads_data_only_to_build_a_subclassed_model_from_a_format_without_architecture(
    tmp_path, monkeypatch, kind, loads
):
    """h5 stores no architecture: build_model() rebuilds the model; only an unbuilt subclassed one needs a batch."""
    import segtrain

    script = tmp_path / "loads.py"
    script.write_text(LOADS_SCRIPT)
    run_dir = tmp_path / "run"
    args = ["fit", script, "--epochs", 1, "--segment", 1, "--run-dir", run_dir, "--format", "h5"]
    assert_exit(run_cli(*args, "--param", f"kind={kind}", "--isolation", "session", "--no-progress"), 0)
    log = tmp_path / "loads.log"
    monkeypatch.setenv("LOAD_LOG", str(log))
    model = segtrain.load_model(run_dir)
    assert (log.read_text().splitlines() if log.exists() else []) == ["load"] * loads
    assert int(model.optimizer.iterations.numpy()) == 4  # 64 samples in batches of 16

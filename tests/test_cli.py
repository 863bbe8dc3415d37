"""The command line end to end, through real runs: a bad script exits 2 from inside the worker, the
table printed at the end, the default run directory and the export.

The in-process checks of options, help, version, run directories and scripts are in
test_fast_cli.py, test_fast_config.py and test_fast_script.py.
"""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from conftest import assert_exit, fit_args, one_line, run_cli

pytestmark = pytest.mark.slow

GOOD_MODEL = """
import numpy as np
import keras

def build_model():
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model
"""
GOOD_DATA = """
def load_data():
    x = np.ones((8, 3), "float32")
    return x, x[:, :1]
"""
WIDE = {"COLUMNS": "200"}  # every column of the table, whatever the terminal


def _script(tmp_path, body: str, name: str = "model.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


# Checked where only a real run can: the model meets the data in fit() (data_shape), and the
# worker process builds the model (uncompiled). The other cases: test_fast_script.py.
BAD_SCRIPTS = {
    "uncompiled": (
        GOOD_MODEL.replace('    model.compile(optimizer="adam", loss="mse")\n', "") + GOOD_DATA,
        "`build_model()` returned a model that is not compiled. Call model.compile(optimizer=..., loss=...)",
    ),
    "data_shape": (
        GOOD_MODEL + "\ndef load_data():\n    return np.ones((8, 7), 'float32'), np.ones((8, 1))\n",
        "training on the data from `load_data()` failed",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SCRIPTS))
def test_a_bad_script_exits_2_through_a_real_run(tmp_path, case):
    body, expected = BAD_SCRIPTS[case]
    script = _script(tmp_path, body)
    proc = run_cli("fit", script, "--epochs", 2, "--segment", 1, "--run-dir", tmp_path / "run", "--no-progress")
    assert_exit(proc, 2)
    message = one_line(proc.stderr)
    assert expected in message
    assert str(script) in message
    if case == "data_shape":
        assert "Check that the shapes and dtypes of x and y match the inputs and outputs of the model" in message
    assert "Traceback" not in proc.stderr
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "failed"


def test_debug_shows_the_traceback(tmp_path):
    script = _script(tmp_path, GOOD_MODEL + "\ndef load_data():\n    raise FileNotFoundError('data.npz')\n")
    proc = run_cli(
        "fit",
        script,
        "--epochs",
        2,
        "--segment",
        1,
        "--run-dir",
        tmp_path / "run",
        "--no-progress",
        "--debug",
        "--isolation",
        "session",
    )
    assert_exit(proc, 2)
    assert "Traceback" in proc.stderr and "raise FileNotFoundError" in proc.stderr
    assert "`load_data()` failed: FileNotFoundError: data.npz" in one_line(proc.stderr)


def _table_rows(stdout: str) -> list[list[str]]:
    """The cells of the table's segment rows: a row starts with the segment number and its epochs."""
    return [line.split() for line in stdout.splitlines() if re.match(r"\s*\d+\s+\d+–\d+\s", line)]


def test_default_run_dir_and_the_table_of_segments(tmp_path):
    script = _script(tmp_path, GOOD_MODEL + GOOD_DATA, name="tiny_default.py")
    proc = run_cli(
        "fit", script, "--epochs", 3, "--segment", 2, "--isolation", "session", "--no-progress", cwd=tmp_path, env=WIDE
    )
    assert_exit(proc, 0)
    run_dir = tmp_path / "checkpoints" / "tiny_default"
    assert (run_dir / "manifest.json").exists()
    segments = [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]

    lines = proc.stdout.splitlines()
    assert lines[0].strip() == "segtrain run checkpoints/tiny_default"
    header = " ".join(lines[:6])
    for column in ("seg", "epochs", "outcome", "time s", "s/epoch", "load", "save", "loss"):
        assert column in header, proc.stdout
    rows = _table_rows(proc.stdout)
    # One row per segment: its number, epochs (1-based, inclusive), outcome, ..., the last loss.
    assert [row[:3] for row in rows] == [["1", "1–2", "boundary"], ["2", "3–3", "finished"]], proc.stdout
    assert [row[-1] for row in rows] == [f"{s['final_logs']['loss']:.4g}" for s in segments]
    assert all(float(row[3]) > 0 for row in rows)  # time s
    summary = one_line(proc.stdout)
    assert "finished: 3/3 epochs in 2 segments (session isolation)" in summary
    assert "finished: finished all 3 epochs (checkpoints/tiny_default)" in one_line(proc.stderr)


def test_report_prints_the_same_table(tmp_path):
    run_dir = tmp_path / "run"
    assert_exit(run_cli(*fit_args("dict_io", run_dir, 3, 1, "--isolation", "session")), 0)
    proc = run_cli("report", run_dir, env=WIDE)
    assert_exit(proc, 0)
    rows = _table_rows(proc.stdout)
    assert [row[:3] for row in rows] == [
        ["1", "1–1", "boundary"],
        ["2", "2–2", "boundary"],
        ["3", "3–3", "finished"],
    ], proc.stdout


def test_export_keras_and_savedmodel(tmp_path):
    for target in (tmp_path / "final.keras", tmp_path / "served"):
        proc = run_cli(
            *fit_args("dict_io", tmp_path / f"run-{target.name}", 2, 1, "--export", target, "--isolation", "session")
        )
        assert_exit(proc, 0)
        assert target.exists()
    assert (tmp_path / "served" / "saved_model.pb").exists()

"""The command line in-process (typer's CliRunner on `segtrain.cli.app`): help, version, and run
directories that hold no run. Nothing here starts a training process."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from conftest import SCRIPTS, assert_exit, one_line
from segtrain import __version__
from segtrain.cli import app

runner = CliRunner()
COMMANDS = sorted(get_command(app).commands)  # every command the app has, new ones included


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_version():
    result = invoke("--version")
    assert_exit(result, 0)
    assert result.stdout.strip() == f"segtrain {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_has_an_example(command):
    result = invoke(command, "--help")
    assert_exit(result, 0)
    text = one_line(result.stdout)
    assert f"Example: segtrain {command} " in text
    assert f"Usage: segtrain {command}" in text or f"Usage: root {command}" in text


def test_the_top_level_help_has_an_example_and_lists_every_command():
    assert {"fit", "resume", "report", "status"} <= set(COMMANDS)
    result = invoke("--help")
    assert_exit(result, 0)
    assert "Example: segtrain fit model.py --epochs 1000 --segment 50 --seed 0" in one_line(result.stdout)
    assert all(command in result.stdout for command in COMMANDS)


# -- run directories that hold no run ----------------------------------------------------------------


def _empty_dir(tmp_path: Path) -> Path:
    path = tmp_path / "empty"
    path.mkdir()
    return path


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "no" / "such" / "run"


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not a run\n")
    return path


def _bad_manifest(tmp_path: Path) -> Path:
    path = tmp_path / "broken"
    path.mkdir()
    (path / "manifest.json").write_text("{ this is not JSON")
    return path


NOT_A_RUN = {
    "empty dir": (_empty_dir, "is not a segtrain run directory (no manifest.json)"),
    "missing path": (_missing, None),  # each command says it its own way; the path is what matters
    "a file": (_a_file, None),
    "manifest not JSON": (_bad_manifest, "cannot be read"),
}


@pytest.mark.parametrize("command", ["resume", "report", "status"])
@pytest.mark.parametrize("case", sorted(NOT_A_RUN))
def test_a_run_dir_that_is_no_run_exits_2_naming_the_path(tmp_path, command, case):
    make, expected = NOT_A_RUN[case]
    path = make(tmp_path)
    result = invoke(command, path)
    assert_exit(result, 2)
    message = one_line(result.stderr)
    assert message.startswith("error: ")
    assert str(path) in message, message
    if expected:
        assert expected in message, message
    if case == "manifest not JSON":
        assert str(path / "manifest.json") in message and "JSONDecodeError" in message, message
    assert "Traceback" not in result.stderr
    assert not _missing(tmp_path).exists(), "reading a run must not create its directory"


def test_a_file_is_not_turned_into_a_run_by_reading_it(tmp_path):
    path = _a_file(tmp_path)
    for command in ("resume", "report", "status"):
        assert_exit(invoke(command, path), 2)
    assert path.read_text() == "not a run\n"


def test_fit_into_a_run_dir_that_is_a_file_exits_2_naming_it(tmp_path):
    path = _a_file(tmp_path)
    result = invoke("fit", SCRIPTS / "dict_io.py", "--epochs", 2, "--segment", 1, "--run-dir", path, "--no-progress")
    assert_exit(result, 2)
    message = one_line(result.stderr)
    assert f"--run-dir {path} is a file" in message, message
    assert path.read_text() == "not a run\n"
    assert not (tmp_path / "lock").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_fit_of_a_missing_script_exits_2_naming_it(tmp_path):
    script = tmp_path / "nope.py"
    result = invoke("fit", script, "--epochs", 2, "--segment", 1, "--run-dir", tmp_path / "r", "--no-progress")
    assert_exit(result, 2)
    message = one_line(result.stderr)
    assert f"Cannot read the training script {script}" in message, message
    assert "No such file or directory" in message
    assert not (tmp_path / "r" / "manifest.json").exists()


@pytest.mark.parametrize(
    "command, choices",
    [
        ("fit", ["--isolation <process|session>", "--format <keras|h5|savedmodel>"]),
        (
            "sweep",
            [
                "--sampler <tpe|random|grid|cmaes>",
                "--pruner <median|hyperband|none>",
                "--direction <minimize|maximize>",
                "--isolation <process|session>",
            ],
        ),
        ("cv", ["--format <keras|h5|savedmodel>"]),
    ],
)
def test_help_shows_the_choices_of_options_that_have_them(command, choices):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert_exit(result, 0)
    for choice in choices:
        assert choice in result.stdout


def test_commands_are_listed_in_the_order_a_user_meets_them():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert_exit(result, 0)
    listed = [line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()]
    order = ["fit", "run", "resume", "status", "report", "verify", "export", "ls", "sweep", "cv"]
    assert listed == [name for name in order if name in listed] and listed[:5] == order[:5]

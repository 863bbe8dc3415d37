"""Option validation, in-process: every bad option exits 2 (CLI) or raises SegtrainError with
exit_code 2 (`segtrain.fit`) with a message that names the option, before anything is written."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import segtrain
from conftest import SCRIPTS, assert_exit, one_line
from segtrain.cli import app
from segtrain.errors import ConfigError

runner = CliRunner()
SCRIPT = SCRIPTS / "dict_io.py"

# (CLI options replacing or adding to a valid command, expected message). Values of the wrong type are
# refused by typer's parser ("Invalid value for '--seed'"), the others by RunConfig.
BAD_CLI = {
    "epochs zero": (["--epochs", "0"], "--epochs must be a positive integer. Received: epochs=0"),
    "epochs negative": (["--epochs", "-3"], "--epochs must be a positive integer. Received: epochs=-3"),
    "epochs not a number": (["--epochs", "many"], "Invalid value for '--epochs' / '-e'"),
    "segment zero": (["--segment", "0"], "--segment must be a positive integer or 'auto'. Received: segment=0"),
    "segment negative": (["--segment", "-2"], "--segment must be a positive integer or 'auto'. Received: segment=-2"),
    "segment word": (
        ["--segment", "often"],
        "--segment must be a positive integer or 'auto'. Received: segment='often'",
    ),
    "keep zero": (["--keep", "0"], "--keep must be a positive integer. Received: keep=0"),
    "keep not a number": (["--keep", "all"], "Invalid value for '--keep'"),
    "save_every zero": (["--save-every", "0"], "--save-every must be a positive integer. Received: save_every=0"),
    "save_every negative": (["--save-every", "-1"], "--save-every must be a positive integer. Received: save_every=-1"),
    "seed not an integer": (["--seed", "abc"], "Invalid value for '--seed'"),
    "seed a float": (["--seed", "1.5"], "Invalid value for '--seed'"),
    "isolation": (["--isolation", "thread"], "Invalid value for '--isolation'"),  # a choice: typer names them
    "format": (["--format", "pickle"], "Invalid value for '--format'"),
    "signals": (["--signals", "SIGNOPE"], "--signals: unknown signal name 'SIGNOPE'"),
    "signals, one of several": (["--signals", "TERM,NOPE"], "--signals: unknown signal name 'SIGNOPE'"),
    "max_memory zero": (
        ["--max-memory", "0"],
        "--max-memory must be a positive number of MB. Received: max_memory=0.0",
    ),
    "max_memory negative": (
        ["--max-memory", "-5"],
        "--max-memory must be a positive number of MB. Received: max_memory=-5.0",
    ),
    "max_memory not a number": (["--max-memory", "lots"], "Invalid value for '--max-memory'"),
}


def _command(tmp_path, options: list[str]) -> list[str]:
    args = ["fit", str(SCRIPT), "--epochs", "2", "--segment", "1", "--run-dir", str(tmp_path / "run"), "--no-progress"]
    for flag, value in zip(options[::2], options[1::2], strict=True):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    return args


@pytest.mark.parametrize("case", sorted(BAD_CLI))
def test_bad_option_on_the_command_line_exits_2_naming_it(tmp_path, case):
    options, expected = BAD_CLI[case]
    result = runner.invoke(app, _command(tmp_path, options))
    assert_exit(result, 2)
    message = one_line(result.stderr)
    assert expected in message, message
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists(), "nothing is written for a refused option"


def test_a_good_command_line_passes_the_same_parser(tmp_path):
    """The bad cases above differ from this valid command in one option only."""
    from typer.main import get_command

    ctx = get_command(app).commands["fit"].make_context("fit", _command(tmp_path, [])[1:])
    assert ctx.params["epochs"] == 2 and ctx.params["segment"] == "1" and ctx.params["keep"] == 2


def test_a_bad_signal_message_names_the_option(tmp_path):
    result = runner.invoke(app, _command(tmp_path, ["--signals", "SIGNOPE"]))
    assert_exit(result, 2)
    assert "--signals" in one_line(result.stderr)


# (keyword arguments for segtrain.fit replacing or adding to valid ones, expected message)
BAD_API = {
    "epochs zero": ({"epochs": 0}, "--epochs must be a positive integer. Received: epochs=0"),
    "epochs a float": ({"epochs": 2.5}, "--epochs must be a positive integer. Received: epochs=2.5"),
    "epochs a bool": ({"epochs": True}, "--epochs must be a positive integer. Received: epochs=True"),
    "epochs a string": ({"epochs": "3"}, "--epochs must be a positive integer. Received: epochs='3'"),
    "segment zero": ({"segment": 0}, "--segment must be a positive integer or 'auto'. Received: segment=0"),
    "segment word": ({"segment": "often"}, "--segment must be a positive integer or 'auto'. Received: segment='often'"),
    "keep zero": ({"keep": 0}, "--keep must be a positive integer. Received: keep=0"),
    "save_every zero": ({"save_every": 0}, "--save-every must be a positive integer. Received: save_every=0"),
    "save_every a float": ({"save_every": 1.5}, "--save-every must be a positive integer. Received: save_every=1.5"),
    "seed a string": ({"seed": "abc"}, "--seed must be an integer. Received: seed='abc'"),
    "seed a float": ({"seed": 1.5}, "--seed must be an integer. Received: seed=1.5"),
    "isolation": ({"isolation": "thread"}, "--isolation must be one of process, session. Received: isolation='thread'"),
    "format": ({"format": "pickle"}, "--format must be one of keras, h5, savedmodel. Received: format='pickle'"),
    "signals": ({"signals": ("SIGTERM", "SIGNOPE")}, "--signals: unknown signal name 'SIGNOPE'"),
    "signals not a signal": ({"signals": ("SIG_DFL",)}, "--signals: unknown signal name 'SIG_DFL'"),
    "max_memory zero": ({"max_memory": 0}, "--max-memory must be a positive number of MB. Received: max_memory=0"),
    "max_memory negative": (
        {"max_memory": -1.5},
        "--max-memory must be a positive number of MB. Received: max_memory=-1.5",
    ),
    "max_memory a string": (
        {"max_memory": "1G"},
        "--max-memory must be a positive number of MB. Received: max_memory='1G'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_API))
def test_bad_option_in_the_api_raises_segtrain_error_with_exit_code_2(tmp_path, case):
    overrides, expected = BAD_API[case]
    kwargs = {"epochs": 2, "segment": 1, "run_dir": tmp_path / "run", "progress": False, **overrides}
    with pytest.raises(segtrain.SegtrainError) as info:
        segtrain.fit(SCRIPT, **kwargs)
    assert info.value.exit_code == 2
    assert isinstance(info.value, ConfigError)
    assert expected in str(info.value)
    assert not (tmp_path / "run").exists(), "nothing is written for a refused option"


def test_run_config_accepts_the_documented_values(tmp_path):
    cfg = segtrain.RunConfig(
        script=SCRIPT,
        epochs=3,
        segment="auto",
        run_dir=tmp_path,
        seed=0,
        isolation="session",
        format="h5",
        save_every=1,
        keep=1,
        signals=("SIGTERM", "SIGUSR2"),
        max_memory=512.5,
    )
    assert (cfg.segment, cfg.format, cfg.max_memory, cfg.signals) == ("auto", "h5", 512.5, ("SIGTERM", "SIGUSR2"))
    assert segtrain.RunConfig.from_json(cfg.to_json()) == cfg


def test_the_default_run_dir_is_under_checkpoints():
    cfg = segtrain.RunConfig(script="some/where/model.py", epochs=1, segment=1)
    assert str(cfg.run_dir) == "checkpoints/model"


def test_resume_validates_its_overrides(tmp_path):
    """`segtrain.resume(run_dir, keep=0)` is refused like `fit(keep=0)`: one validation for both."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = segtrain.RunConfig(script=SCRIPT, epochs=2, segment=1, run_dir=run_dir)
    import json

    (run_dir / "manifest.json").write_text(json.dumps({"config": cfg.to_json(), "status": "new"}))
    with pytest.raises(segtrain.SegtrainError) as info:
        segtrain.resume(run_dir, keep=0)
    assert info.value.exit_code == 2 and "--keep must be a positive integer" in str(info.value)

"""The command line: options, help, version, and every bad input a user can give."""

from __future__ import annotations

import textwrap

import pytest

from conftest import SCRIPTS, fit_args, run_cli
from segtrain import __version__

GOOD_MODEL = '''
import numpy as np
import keras

def build_model():
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model
'''
GOOD_DATA = '''
def load_data():
    x = np.ones((8, 3), "float32")
    return x, x[:, :1]
'''


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"segtrain {__version__}"


@pytest.mark.parametrize("command", ["fit", "resume", "report"])
def test_help_has_an_example(command):
    proc = run_cli(command, "--help")
    assert proc.returncode == 0
    assert "Example: segtrain " + command in " ".join(proc.stdout.split())


@pytest.mark.parametrize(
    "options, expected",
    [
        (["--segment", "0"], "--segment must be a positive integer or 'auto'"),
        (["--epochs", "-3"], "--epochs must be a positive integer"),
        (["--format", "pickle"], "--format must be one of keras, h5, savedmodel"),
        (["--isolation", "thread"], "--isolation must be one of process, session"),
        (["--keep", "0"], "--keep must be a positive integer"),
        (["--signals", "SIGNOPE"], "Unknown signal name 'SIGNOPE'"),
    ],
)
def test_bad_options_are_refused(tmp_path, options, expected):
    args = fit_args("dict_io", tmp_path / "run", 2, 1)
    for i in range(0, len(options), 2):  # replace or add each option
        if options[i] in args:
            args[args.index(options[i]) + 1] = options[i + 1]
        else:
            args += options[i : i + 2]
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert expected in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr


def _script(tmp_path, body: str, name: str = "model.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


BAD_SCRIPTS = {
    "no_build_model": (GOOD_DATA.replace("def", "import numpy as np\ndef", 1), "defines no function `build_model()`"),
    "syntax": (GOOD_MODEL + "\ndef load_data(:\n    pass\n", "syntax error on line"),
    "import_error": ("import not_a_module_anywhere\n" + GOOD_MODEL + GOOD_DATA,
                     "importing the script failed: ModuleNotFoundError"),
    "uncompiled": (GOOD_MODEL.replace('    model.compile(optimizer="adam", loss="mse")\n', "") + GOOD_DATA,
                   "returned a model that is not compiled"),
    "not_a_model": ("import numpy as np\ndef build_model():\n    return 3\n" + GOOD_DATA,
                    "`build_model()` must return a keras.Model. Received: int"),
    "data_type": (GOOD_MODEL + "\ndef load_data():\n    return 'x'\n", "`load_data()` must return"),
    "data_lengths": (GOOD_MODEL + "\ndef load_data():\n    return np.ones((8, 3)), np.ones((5, 1))\n",
                     "different lengths [5, 8]"),
    "data_shape": (GOOD_MODEL + "\ndef load_data():\n    return np.ones((8, 7), 'float32'), np.ones((8, 1))\n",
                   "Check that the shapes and dtypes of x and y"),
    "load_data_raises": (GOOD_MODEL + "\ndef load_data():\n    raise FileNotFoundError('data.npz')\n",
                         "`load_data()` failed: FileNotFoundError: data.npz"),
    "bad_fit_kwargs": (GOOD_MODEL + GOOD_DATA + "\nfit_kwargs = {'epochs': 3}\n", "`fit_kwargs` may not set epochs"),
}


@pytest.mark.parametrize("case", sorted(BAD_SCRIPTS))
def test_bad_scripts_name_file_function_and_fix(tmp_path, case):
    body, expected = BAD_SCRIPTS[case]
    script = _script(tmp_path, body)
    proc = run_cli("fit", script, "--epochs", 2, "--segment", 1, "--run-dir", tmp_path / "run", "--no-progress")
    assert proc.returncode == 2, proc.stderr[-2000:]
    message = " ".join(proc.stderr.split())
    assert expected in message
    assert str(script) in message
    assert "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(tmp_path):
    script = _script(tmp_path, GOOD_MODEL + "\ndef load_data():\n    raise FileNotFoundError('data.npz')\n")
    proc = run_cli("fit", script, "--epochs", 2, "--segment", 1, "--run-dir", tmp_path / "run",
                   "--no-progress", "--debug", "--isolation", "session")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and "raise FileNotFoundError" in proc.stderr


def test_missing_script(tmp_path):
    proc = run_cli("fit", tmp_path / "nope.py", "--epochs", 2, "--segment", 1, "--run-dir", tmp_path / "r")
    assert proc.returncode == 2 and "Cannot read the training script" in proc.stderr


def test_resume_of_a_directory_that_is_no_run(tmp_path):
    proc = run_cli("resume", tmp_path)
    assert proc.returncode == 2 and "is not a segtrain run directory" in proc.stderr


def test_default_run_dir_is_under_checkpoints(tmp_path):
    script = _script(tmp_path, GOOD_MODEL + GOOD_DATA, name="tiny_default.py")
    proc = run_cli("fit", script, "--epochs", 2, "--segment", 1, "--isolation", "session", "--no-progress",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "checkpoints" / "tiny_default" / "manifest.json").exists()
    assert "segment" in proc.stdout  # the rich table, one row per segment


def test_export_keras_and_savedmodel(tmp_path):
    for target in (tmp_path / "final.keras", tmp_path / "served"):
        proc = run_cli(*fit_args("dict_io", tmp_path / f"run-{target.name}", 2, 1, "--export", target,
                                 "--isolation", "session"))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert target.exists()
    assert (tmp_path / "served" / "saved_model.pb").exists()

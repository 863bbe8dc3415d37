"""The training script's contract, in-process: every bad script is a ScriptError (exit code 2) whose
message names the file, the function and the fix.

`TrainingScript.load` checks what importing shows; `build_model()`, `callbacks()`,
`call("load_data")` and `call_train_epoch()` check what the script's functions return; `prepare`
checks the data. tests/test_cli.py proves the exit code through a real run for a case or two.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from segtrain.errors import ScriptError
from segtrain.training.data import prepare
from segtrain.training.script import TrainingScript

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
GOOD = GOOD_MODEL + GOOD_DATA


@pytest.fixture(autouse=True)
def _restore_import_state():
    """TrainingScript.load puts the script's folder on sys.path and the module in sys.modules."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name.startswith("segtrain_script_"):
            del sys.modules[name]


def _write(tmp_path: Path, body: str, name: str = "model.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path.resolve()


def _error(call) -> str:
    with pytest.raises(ScriptError) as info:
        call()
    assert info.value.exit_code == 2
    return " ".join(str(info.value).split())


# -- what importing shows: TrainingScript.load -------------------------------------------------------

LOAD_ERRORS = {
    # case: (script body, what the message must say: the function or part, and the fix)
    "no_build_model": (
        "import numpy as np\n" + GOOD_DATA,
        [
            "defines no function `build_model()`",
            "A training script defines `build_model()` (returns a compiled keras.Model) and `load_data()`",
        ],
    ),
    "no_load_data": (GOOD_MODEL, ["defines no function `load_data()`", "`load_data()` (returns the training data)"]),
    "build_model_not_callable": (
        "build_model = 3\n" + GOOD_DATA.replace("def", "import numpy as np\ndef", 1),
        ["defines no function `build_model()`"],
    ),
    "syntax": (
        GOOD_MODEL + "\ndef load_data(:\n    pass\n",  # `def load_data(:` is line 10
        ["syntax error on line 10: invalid syntax", "Fix the script and run again."],
    ),
    "import_error": (
        "import not_a_module_anywhere\n" + GOOD,
        [
            "importing the script failed: ModuleNotFoundError: No module named 'not_a_module_anywhere'",
            "(run with --debug for the traceback)",
        ],
    ),
    "raises_on_import": (
        "raise RuntimeError('no GPU here')\n" + GOOD,
        ["importing the script failed: RuntimeError: no GPU here"],
    ),
    "bad_fit_kwargs_epochs": (
        GOOD + "\nfit_kwargs = {'epochs': 3}\n",
        ["`fit_kwargs` may not set epochs, which segtrain sets: for epochs: use --epochs"],
    ),
    "bad_fit_kwargs_several": (
        GOOD + "\nfit_kwargs = {'batch_size': 4, 'shuffle': True, 'callbacks': [], 'initial_epoch': 2}\n",
        [
            "`fit_kwargs` may not set callbacks, initial_epoch, which segtrain sets: for callbacks: define "
            "callbacks() returning the list; for initial_epoch: segtrain resumes at the right epoch itself"
        ],
    ),
    "fit_kwargs_not_a_dict": (
        GOOD + "\nfit_kwargs = [('batch_size', 4)]\n",
        ["`fit_kwargs` must be a dict. Received: list"],
    ),
    "callbacks_not_a_function": (
        GOOD + "\ncallbacks = [keras.callbacks.History()]\n",
        ["`callbacks` must be a function returning a list of callbacks."],
    ),
    "custom_objects_not_a_dict": (
        GOOD + "\ncustom_objects = ['MyLayer']\n",
        ["`custom_objects` must be a dict of name -> class or function."],
    ),
}


@pytest.mark.parametrize("case", sorted(LOAD_ERRORS))
def test_a_bad_script_is_refused_when_loaded(tmp_path, case):
    body, expected = LOAD_ERRORS[case]
    script = _write(tmp_path, body)
    message = _error(lambda: TrainingScript.load(script))
    assert message.startswith(f"{script}: "), message
    for part in expected:
        assert part in message, message
    assert "Traceback" not in message


def test_debug_adds_the_traceback(tmp_path):
    script = _write(tmp_path, "import not_a_module_anywhere\n" + GOOD)
    message = _error(lambda: TrainingScript.load(script, debug=True))
    assert "Traceback" in message and "import not_a_module_anywhere" in message
    assert "run with --debug" not in message


@pytest.mark.parametrize(
    "name, expected",
    [
        ("missing.py", "Training script not found: "),
        ("model.txt", "The training script must be a .py file. Received: "),
    ],
)
def test_a_path_that_is_no_script(tmp_path, name, expected):
    path = tmp_path / name
    if name.endswith(".txt"):
        path.write_text(GOOD)
    message = _error(lambda: TrainingScript.load(path))
    assert message == expected + str(path.resolve())


def test_a_good_script_loads_with_its_options(tmp_path):
    script = TrainingScript.load(_write(tmp_path, GOOD + "\nfit_kwargs = {'batch_size': 4}\n"))
    assert script.path == (tmp_path / "model.py").resolve()
    assert script.fit_kwargs == {"batch_size": 4} and script.custom_objects == {}
    assert script.train_epoch is None and script.callbacks() == []
    model = script.build_model()
    assert model.compiled and model.optimizer is not None


# -- what the functions return: build_model(), callbacks(), call("load_data"), train_epoch ---------------

CALL_ERRORS = {
    "uncompiled": (
        GOOD.replace('    model.compile(optimizer="adam", loss="mse")\n', ""),
        lambda s: s.build_model(),
        [
            "`build_model()` returned a model that is not compiled.",
            "Call model.compile(optimizer=..., loss=...) before returning it.",
        ],
    ),
    "not_a_model": (
        "import numpy as np\ndef build_model():\n    return 3\n" + GOOD_DATA,
        lambda s: s.build_model(),
        ["`build_model()` must return a keras.Model. Received: int"],
    ),
    "build_model_raises": (
        GOOD.replace("def build_model():\n", "def build_model():\n    raise ValueError('bad units')\n"),
        lambda s: s.build_model(),
        ["`build_model()` failed: ValueError: bad units", "(run with --debug for the traceback)"],
    ),
    "load_data_raises": (
        GOOD_MODEL + "\ndef load_data():\n    raise FileNotFoundError('data.npz')\n",
        lambda s: s.call("load_data"),
        ["`load_data()` failed: FileNotFoundError: data.npz", "(run with --debug for the traceback)"],
    ),
    "callbacks_not_callbacks": (
        GOOD + "\ndef callbacks():\n    return [print]\n",
        lambda s: s.callbacks(),
        ["`callbacks()` must return a list of keras.callbacks.Callback instances."],
    ),
    "callbacks_not_a_list": (
        GOOD + "\ndef callbacks():\n    return keras.callbacks.EarlyStopping()\n",
        lambda s: s.callbacks(),
        ["`callbacks()` must return a list of keras.callbacks.Callback instances."],
    ),
    "callbacks_raises": (
        GOOD + "\ndef callbacks():\n    raise KeyError('patience')\n",
        lambda s: s.callbacks(),
        ["`callbacks()` failed: KeyError: 'patience'"],
    ),
    "train_epoch_returns_nonsense": (
        GOOD + "\ndef train_epoch(model, data, epoch):\n    return 3\n",
        lambda s: s.call_train_epoch(None, None, 0),
        ["`train_epoch()` must return a dict of logs such as {'loss': 0.1} (or None). Received: int"],
    ),
    "train_epoch_raises": (
        GOOD + "\ndef train_epoch(model, data, epoch):\n    raise ZeroDivisionError('lr')\n",
        lambda s: s.call_train_epoch(None, None, 4),
        ["`train_epoch(model, data, epoch=4)` failed: ZeroDivisionError: lr"],
    ),
}


@pytest.mark.parametrize("case", sorted(CALL_ERRORS))
def test_a_bad_function_result_is_refused(tmp_path, case):
    body, call, expected = CALL_ERRORS[case]
    script = TrainingScript.load(_write(tmp_path, body))
    message = _error(lambda: call(script))
    assert message.startswith(f"{script.path}: "), message
    for part in expected:
        assert part in message, message


def test_train_epoch_may_return_logs_or_none(tmp_path):
    body = GOOD + "\ndef train_epoch(model, data, epoch):\n    return None if epoch else {'loss': 0.5}\n"
    script = TrainingScript.load(_write(tmp_path, body))
    assert script.call_train_epoch(None, None, 0) == {"loss": 0.5}
    assert script.call_train_epoch(None, None, 1) == {}


# -- what load_data() returned: prepare ------------------------------------------------------------------

N = 8
X, Y = np.ones((N, 3), "float32"), np.ones((N, 1), "float32")

DATA_ERRORS = {
    "a_string": (
        "x",
        {},
        ["`load_data()` must return (x, y), ((x, y), (x_val, y_val)), a tf.data.Dataset", "Received: str"],
    ),
    "three_items": ((X, Y, Y), {}, ["`load_data()` must return (x, y)", "Received: tuple of length 3"]),
    "x_not_arrays": (
        ("abc", "def"),
        {},
        ["`load_data()` must return arrays (numpy, or dicts of them)", "Received x of type str"],
    ),
    "lengths": (
        (X, np.ones((5, 1))),
        {},
        [
            "`load_data()` returned inputs and targets of different lengths [5, 8]",
            "every array must have one row per sample",
        ],
    ),
    "dict_lengths": (({"a": X, "b": np.ones((7, 2))}, Y), {}, ["different lengths [7, 8]"]),
    "sample_weight_length": ((X, Y), {"sample_weight": np.ones(3)}, ["different lengths [3, 8]"]),
    "no_samples": ((np.ones((0, 3)), np.ones((0, 1))), {}, ["`load_data()` returned no samples."]),
    "steps_per_epoch_too_many": (
        (X, Y),
        {"batch_size": 4, "steps_per_epoch": 5},
        ["fit_kwargs['steps_per_epoch']=5 exceeds the 2 batches of 4 that 8 samples make. Lower it, or leave it out."],
    ),
}


@pytest.mark.parametrize("case", sorted(DATA_ERRORS))
def test_bad_load_data_output_is_refused(tmp_path, case):
    raw, fit_kwargs, expected = DATA_ERRORS[case]
    script = _write(tmp_path, GOOD)
    message = _error(lambda: prepare(raw, fit_kwargs, 0, script))
    assert message.startswith(f"{script}: "), message
    for part in expected:
        assert part in message, message


def test_a_dataset_of_unknown_length_needs_steps_per_epoch(tmp_path):
    import tensorflow as tf

    script = _write(tmp_path, GOOD)
    endless = tf.data.Dataset.from_tensor_slices((X, Y)).batch(4).repeat()
    message = _error(lambda: prepare(endless, {}, 0, script))
    assert message.startswith(f"{script}: the training dataset has no known length"), message
    assert "Set fit_kwargs = {'steps_per_epoch': N}." in message
    assert prepare(endless, {"steps_per_epoch": 3}, 0, script).steps_per_epoch == 3


def test_the_data_of_a_good_script_prepares(tmp_path):
    script = TrainingScript.load(_write(tmp_path, GOOD + "\nfit_kwargs = {'batch_size': 3}\n"))
    data = prepare(script.call("load_data"), script.fit_kwargs, 0, script.path)
    assert data.steps_per_epoch == 3  # ceil(8 / 3)
    assert data.fit_kwargs == {"validation_batch_size": 3}


@pytest.mark.parametrize(
    ("kwargs", "epochs", "history"),
    [({"epochs": 5}, 5, list(range(5))), ({"epochs": 5, "initial_epoch": 2}, 3, [2, 3, 4])],
)
def test_a_launched_fit_trains_its_epochs_from_initial_epoch(tmp_path, kwargs, epochs, history):
    import keras

    from segtrain.training import launched

    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    call = launched.InterceptedFit.bind(tmp_path / "s.py", keras.Model.fit, model, (np.zeros((4, 2)),), kwargs)
    assert call.epochs == epochs and call.as_script().initial_epoch == kwargs.get("initial_epoch", 0)
    losses = [0.5] * epochs
    assert launched.history(model, {"loss": losses}, 1, call.initial_epoch).epoch == history


@pytest.mark.parametrize("initial_epoch", [5, 7, -1, 1.5])
def test_a_launched_fit_that_trains_no_epoch_is_refused(tmp_path, initial_epoch):
    import keras

    from segtrain.training import launched

    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    with pytest.raises(ScriptError, match=r"trains no epoch: initial_epoch must be an integer from 0 to epochs - 1"):
        kwargs = {"epochs": 5, "initial_epoch": initial_epoch}
        launched.InterceptedFit.bind(tmp_path / "s.py", keras.Model.fit, model, (np.zeros((4, 2)),), kwargs)

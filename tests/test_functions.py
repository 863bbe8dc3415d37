"""Functions instead of a script file, and a module by name (issue 14): the workers import them by name."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import SCRIPTS, assert_bitwise_equal, assert_exit, cli_env, final_variables, one_line, run_cli

MAIN = """\
import sys

import segtrain
{imports}

{defs}

if __name__ == "__main__" or {unguarded}:
    outcome = segtrain.fit(
        build_model=build_model, load_data=load_data, fit_kwargs={fit_kwargs}, epochs=4, segment=2, seed=3,
        run_dir=sys.argv[1], progress=False,
    )
    sys.exit(outcome.exit_code)
"""


def _main(path, *, imports="", defs="", fit_kwargs="fit_kwargs", unguarded=False):
    path.write_text(
        MAIN.format(imports=imports, defs=textwrap.dedent(defs), fit_kwargs=fit_kwargs, unguarded=unguarded)
    )
    return path


def _python(script, run_dir, cwd):
    return subprocess.run(
        [sys.executable, str(script), str(run_dir)], capture_output=True, text=True, cwd=cwd, env=cli_env(), timeout=300
    )


@pytest.fixture
def package(tmp_path):
    """A package of the user's, `mypkg.train`, holding the contract's functions (tests/scripts/keras_args.py)."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    shutil.copy(SCRIPTS / "keras_args.py", tmp_path / "mypkg" / "train.py")
    return tmp_path


@pytest.mark.slow
def test_functions_by_name_and_a_module_name_equal_the_script_file(package):
    from_file = package / "file"
    args = ["--epochs", 4, "--seed", 3, "--no-progress"]
    assert_exit(run_cli("fit", package / "mypkg" / "train.py", "--segment", 4, "--run-dir", from_file, *args), 0)

    # `segtrain fit mypkg.train`: a dotted module name, found from the working directory as `python -m` would.
    by_module = package / "module"
    assert_exit(run_cli("fit", "mypkg.train", "--segment", 2, "--run-dir", by_module, *args, cwd=package), 0)
    assert_bitwise_equal(final_variables(by_module), final_variables(from_file))

    # segtrain.fit(build_model=..., load_data=...) from the user's own main script: functions of a module,
    # and functions defined in the main script itself (imported by path, its __main__ block not run again).
    imported = _main(package / "main.py", imports="from mypkg.train import build_model, fit_kwargs, load_data")
    assert_exit(_python(imported, package / "functions", package), 0)
    own = (SCRIPTS / "keras_args.py").read_text()
    in_main = _main(
        package / "own.py", defs=own.replace("import keras\nimport numpy as np\n", "import keras, numpy as np\n")
    )
    assert_exit(_python(in_main, package / "own", package), 0)
    for run in ("functions", "own"):
        assert_bitwise_equal(final_variables(package / run), final_variables(from_file))


@pytest.mark.slow
def test_an_unguarded_call_in_the_main_script_says_what_to_do(package):
    own = (
        (SCRIPTS / "keras_args.py")
        .read_text()
        .replace("import keras\nimport numpy as np\n", "import keras, numpy as np\n")
    )
    script = _main(package / "unguarded.py", defs=own, unguarded=True)  # a worker imports it for build_model
    proc = _python(script, package / "run", package)
    assert_exit(proc, 1)  # the ScriptError (exit_code 2) reaches the user's script as an exception
    assert 'put the call under `if __name__ == "__main__":`' in one_line(proc.stderr + proc.stdout)


def _build():
    return None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"build_model": lambda: None, "load_data": _build}, "build_model=<lambda> is a lambda"),
        ({"build_model": _build}, "Give load_data= too"),
        ({"script": "x.py", "build_model": _build, "load_data": _build}, "Give either a script or its functions"),
        ({"build_model": _build, "load_data": _build, "fit_kwargs": {"epochs": 3}}, "fit_kwargs may not set epochs"),
        ({"script": "no_such_pkg.train"}, "No Python module named 'no_such_pkg.train'"),
    ],
)
def test_functions_that_a_worker_cannot_import_are_refused_before_anything_starts(tmp_path, kwargs, message):
    import segtrain
    from segtrain.errors import SegtrainError

    def inner():
        return None

    with pytest.raises(SegtrainError, match=message.replace("(", r"\(").replace("*", r"\*")):
        segtrain.fit(**kwargs, epochs=1, segment=1, run_dir=tmp_path / "run", progress=False)
    with pytest.raises(SegtrainError, match="a function defined inside another function"):
        segtrain.fit(build_model=inner, load_data=_build, epochs=1, segment=1, run_dir=tmp_path / "run")

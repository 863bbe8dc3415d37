"""`pip install .` builds a package that works away from the source tree: its command, its choices, its files.

The wheel is built as a user's `pip install .` builds it (an isolated build with
the backend that pyproject.toml asks for) and installed into a new virtual
environment. Its dependencies are not installed again (`--no-deps`): that
environment sees this one's site-packages through a `.pth` file, as a plain
folder, so TensorFlow is not downloaded, and this environment's editable
segtrain (a `.pth` hook of its own, which a plain folder does not run) is not
what answers. What it proves: the build metadata, the packages found, the
package data (py.typed) and the license file ship, the console script is
installed and runs, and `--help` shows the choices. What it does not: that
pip can resolve the declared dependencies (`make test` installs them from the
same pyproject.toml).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ROOT, assert_exit

pytestmark = pytest.mark.slow

SOURCES = ("pyproject.toml", "README.md", "LICENSE", "segtrain")  # what a build of segtrain reads


def _run(*args: object, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(COLUMNS="200", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_pip_install_gives_a_working_command_with_its_choices(tmp_path):
    source = tmp_path / "source"  # a copy, so the build leaves nothing (build/, *.egg-info) in the work tree
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    venv = tmp_path / "venv"
    assert_exit(_run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path), 0)
    python = venv / "bin" / "python"
    purelib = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).stdout.strip()
    )
    (purelib / "segtrain_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    install = _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", source, cwd=tmp_path
    )
    assert_exit(install, 0)

    where = _run(
        python,
        "-c",
        "import importlib.metadata as m, segtrain; print(segtrain.__file__); "
        "print(*(f for f in m.distribution('segtrain').files or () if f.name in ('py.typed', 'LICENSE')), sep='\\n')",
        cwd=tmp_path,
    )
    assert_exit(where, 0)
    module, *shipped = where.stdout.splitlines()
    assert Path(module).is_relative_to(venv), f"segtrain was imported from {module}, not from the installed wheel"
    assert "segtrain/py.typed" in shipped and any(f.endswith("/LICENSE") for f in shipped), shipped

    command = venv / "bin" / "segtrain"
    top = _run(command, "--help", cwd=tmp_path)
    assert_exit(top, 0)
    for name in ("fit", "resume", "status", "report", "export", "ls", "sweep", "cv"):
        assert f"  {name} " in top.stdout, f"`segtrain --help` does not list {name}"
    fit = _run(command, "fit", "--help", cwd=tmp_path)
    assert_exit(fit, 0)
    assert "--isolation <process|session>" in fit.stdout
    assert "--format <keras|h5|savedmodel>" in fit.stdout
    assert "--tensorboard DIR|auto" in fit.stdout
    sweep = _run(command, "sweep", "--help", cwd=tmp_path)
    assert_exit(sweep, 0)
    assert "<tpe|random|grid|cmaes>" in sweep.stdout and "<median|hyperband|none>" in sweep.stdout

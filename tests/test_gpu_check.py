"""The GPU check (bench/gpu_check.py, issue 17): its CPU path end to end, and its GPU figures from made-up samples.

No GPU is lent to CI, so the figures that need one (device memory per process from NVML / nvidia-smi,
the waiting worker's context, a 50M-parameter boundary) are computed here from samples, records and a
stand-in `nvidia-smi` made up for the purpose: the code a GPU session runs is tested before it runs there.
The one slow test runs `bench/gpu_check.py --quick` on JAX on the CPU (~60 s on 2 cores).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, assert_exit, cli_env


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gc = _module()

GPU_ONLY = {
    "memory": "skipped: needs a GPU (a worker's device memory per segment, from NVML / nvidia-smi)",
    "prestart": "skipped: needs a GPU (the waiting worker's device context and memory, from NVML / nvidia-smi)",
    "boundary": "skipped: needs a GPU (a 50M-parameter model's boundary on the device)",
}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _sample(t: float, **procs: tuple[str, float | None]) -> object:
    """A sample: pid (as p<N>) → (role, device MB); RSS 500 MB each."""
    return gc.Sample(t, {int(k[1:]): (role, 500.0, mb) for k, (role, mb) in procs.items()})


def _run(samples: list, pid: int = 100) -> object:
    return gc.Run("segments-of-2", ["python"], 0, 1.0, Path("/dev/null"), pid, samples)


# -- the GPU figures, from made-up samples -------------------------------------------------------------------------


def test_nvidia_smi_compute_apps_are_read_per_process_in_mb():
    assert gc.parse_compute_apps("1234, 512\n1234, 100\n77, 0\n") == pytest.approx({1234: 612 * gc.MIB, 77: 0.0})
    assert gc.parse_compute_apps("No running processes found\n") == {}
    assert gc.parse_compute_apps("1234, [N/A]\n") is None  # a driver that does not tell per process
    assert gc.parse_compute_apps(None) is None


def test_devices_fall_back_to_nvidia_smi(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  --query-gpu=*) echo 'NVIDIA H200, 143771, 580.159.04' ;;\n"
        "  --query-compute-apps=*) echo '4242, 1024' ;;\n"
        "esac\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    devices = gc.Devices(use_nvml=False)
    assert devices.source == "nvidia-smi" and devices.driver == "580.159.04"
    assert devices.gpus == [{"name": "NVIDIA H200", "memory_mb": pytest.approx(143771 * gc.MIB)}]
    assert devices.per_pid() == {4242: pytest.approx(1024 * gc.MIB)}


def test_no_gpu_no_device_figures(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    devices = gc.Devices(use_nvml=False)
    assert devices.gpus == [] and devices.per_pid() is None


def _segmented_run(tmp_path, waiting_mb: float = 0.0, last_mb: float = 812.0, runtime_before: bool = False):
    """Two segments (workers 101, 102) under supervisor 100; 102 pre-started during segment 1."""
    run_dir = tmp_path / "run"
    _write_jsonl(
        run_dir / "segments.jsonl",
        [
            {"pid": 101, "prestarted": False, "peak_device_mb": 700.0},
            {"pid": 102, "prestarted": True, "device_runtime_before_takeover": runtime_before, "peak_device_mb": 701.0},
        ],
    )
    samples = [
        _sample(0.0, p100=("supervisor", 0.0), p101=("worker", 800.0), p102=("worker", waiting_mb)),
        _sample(0.25, p100=("supervisor", 0.0), p101=("worker", 810.0), p102=("worker", waiting_mb)),
        _sample(0.5, p100=("supervisor", 0.0), p102=("worker", 805.0)),
        _sample(0.75, p100=("supervisor", 0.0), p102=("worker", last_mb)),
    ]
    return _run(samples), run_dir


def test_phases_tell_the_training_worker_from_the_waiting_ones():
    samples = [
        _sample(0.0, p100=("supervisor", 0.0), p101=("worker", 1.0), p102=("worker", 0.0), p103=("worker", 0.0)),
        _sample(0.5, p100=("supervisor", 0.0), p102=("worker", 2.0), p103=("worker", 0.0)),
    ]
    active, waiting = gc.phases(samples, [101, 102])  # 103: a spare never used
    assert {pid: len(v) for pid, v in active.items()} == {101: 1, 102: 1}
    assert {pid: len(v) for pid, v in waiting.items()} == {102: 1, 103: 2}


def test_memory_held_when_the_last_segment_holds_what_the_first_did(tmp_path):
    run, run_dir = _segmented_run(tmp_path)
    row = gc.memory_row(run, run_dir, [], None, tmp_path / "no-session")
    assert row.status == "held", row.figure
    assert row.data["segments_device_mb"] == [810.0, 812.0]
    assert "810, 812 MB, last ÷ first ×1.002" in row.figure and "no segtrain process on the GPU" in row.figure


def test_memory_broken_by_growth_or_by_a_process_left_on_the_gpu(tmp_path):
    run, run_dir = _segmented_run(tmp_path, last_mb=900.0)
    assert gc.memory_row(run, run_dir, [], None, tmp_path / "s").status == "broken"
    run, run_dir = _segmented_run(tmp_path)
    left = [{"pid": 102, "mb": 500.0, "cmdline": "python -m segtrain.worker"}]
    row = gc.memory_row(run, run_dir, left, None, tmp_path / "s")
    assert row.status == "broken" and "pid 102 500 MB" in row.figure


def test_memory_shows_what_session_isolation_keeps(tmp_path):
    run, run_dir = _segmented_run(tmp_path)
    session_dir = tmp_path / "session"
    _write_jsonl(
        session_dir / "epochs.jsonl",
        [{"segment": 0, "device_mb": 40.0}, {"segment": 1, "device_mb": 44.0}],
    )
    samples = [gc.Sample(t, {200: ("supervisor", 500.0, mb)}, seg) for t, mb, seg in ((0, 900.0, 0), (1, 1300.0, 1))]
    session = gc.Run("session", ["python"], 0, 1.0, Path("/dev/null"), 200, samples)
    row = gc.memory_row(run, run_dir, [], session, session_dir)
    assert row.status == "held"  # session isolation is shown, not judged
    assert row.data["session"]["segments_device_mb"] == [900.0, 1300.0]
    assert "--isolation session (one process): 900, 1300 MB per segment (×1.444), in use by Keras 40, 44 MB" in (
        row.figure
    )


def test_prestart_held_when_the_waiting_worker_has_no_context(tmp_path):
    run, run_dir = _segmented_run(tmp_path)
    row = gc.prestart_row(run, run_dir)
    assert row.status == "held", row.figure
    assert row.data["waiting_samples"] == 2 and row.data["waiting_peak_device_mb"] == 0.0
    assert row.figure.startswith("waiting workers on the GPU: 0 MB, no context, in 2 samples")


def test_prestart_broken_by_a_context_or_by_segtrains_own_record(tmp_path):
    run, run_dir = _segmented_run(tmp_path, waiting_mb=520.0)
    row = gc.prestart_row(run, run_dir)
    assert row.status == "broken" and "a context in pids [102]" in row.figure
    run, run_dir = _segmented_run(tmp_path, runtime_before=True)
    assert gc.prestart_row(run, run_dir).status == "broken"


def test_prestart_unmeasured_without_a_waiting_sample(tmp_path):
    run, run_dir = _segmented_run(tmp_path)
    run.samples = run.samples[2:]
    assert gc.prestart_row(run, run_dir).status == "unmeasured"


def test_no_figure_where_the_training_worker_shows_no_device_memory(tmp_path):
    """A 0 for the waiting worker proves nothing where the driver's pids are not /proc's: then every pid reads 0."""
    run, run_dir = _segmented_run(tmp_path, last_mb=0.0)
    run.samples = [
        gc.Sample(s.t, {pid: (role, rss, 0.0) for pid, (role, rss, _) in s.procs.items()}) for s in run.samples
    ]
    for row in (gc.prestart_row(run, run_dir), gc.memory_row(run, run_dir, [], None, tmp_path / "s")):
        assert row.status == "unmeasured" and "NVML's pids are not this machine's" in row.figure


def _boundary_dir(path: Path, start: float) -> Path:
    seg = {"epoch_seconds": [1.5, 0.5, 0.5], "train_seconds": 2.6, "save_seconds": 1.0, "load_seconds": 1.2}
    _write_jsonl(
        path / "segments.jsonl",
        [
            {**seg, "start_seconds": 6.0, "wall_seconds": 11.0},
            {**seg, "start_seconds": start, "wall_seconds": 5.0 + start, "prestarted": start < 1},
            {**seg, "start_seconds": start, "wall_seconds": 5.0 + start, "prestarted": start < 1},
        ],
    )
    return path


def test_boundary_pre_started_against_cold(tmp_path):
    warm = gc.boundaries(_boundary_dir(tmp_path / "warm", 0.05))
    cold = gc.boundaries(_boundary_dir(tmp_path / "cold", 6.0))
    assert warm["median"] == pytest.approx({"save": 1.0, "start": 0.05, "load": 1.2, "retrace": 1.0, "setup": 0.2})
    assert warm["epoch_seconds"] == 0.5
    row = gc.boundary_row(50_401_290, warm, cold)
    assert row.status == "held", row.figure
    assert row.figure.startswith("50.4M parameters, epoch 0.50 s; pre-started: save 1.00 + start 0.05 + load 1.20 s")
    assert row.data["cost_over_save_load"] == pytest.approx(2.25 / 2.2)
    assert gc.boundary_row(50_401_290, cold, cold).status == "broken"  # no faster than cold, and over 1.5x
    assert gc.parameters({"features": 4096, "width": 4096, "depth": 3}) == 50_401_290


def _trials(memory: list[float], seconds: list[float]) -> list[dict]:
    return [{"device_mb": m, "peak_rss_mb": m, "train_seconds": s} for m, s in zip(memory, seconds, strict=True)]


def test_trials_judge_memory_everywhere_and_time_on_a_gpu_only():
    flat, slower = [600.0] * 6, [1.0, 1.0, 1.0, 1.3, 1.3, 1.3]
    theirs = [{"device_mb": 600.0 + 100 * i, "rss_mb": 1.0, "train_seconds": 1.0} for i in range(6)]
    gpu = gc.trials_row(_trials(flat, [1.0] * 6), theirs, True, False, [], 6, 3)
    assert gpu.status == "held", gpu.figure
    assert "in one process: 600 → 1100 MB (×1.833)" in gpu.figure
    assert gc.trials_row(_trials(flat, slower), theirs, True, False, [], 6, 3).status == "broken"
    assert gc.trials_row(_trials(flat, slower), theirs, False, False, [], 6, 3).status == "held"
    growing = _trials([600.0, 600.0, 600.0, 600.0, 600.0, 700.0], [1.0] * 6)
    assert gc.trials_row(growing, theirs, False, True, [], 6, 3).status == "broken"
    assert gc.trials_row(_trials(flat[:2], [1.0] * 2), [], False, True, [], 6, 3).status == "unmeasured"


def test_drift_uses_the_medians_of_three_from_six_values_on():
    assert gc.drift([1.0, 2.0]) == 2.0
    assert gc.drift([1.0, 1.0, 9.0, 2.0, 2.0, 2.0]) == 2.0
    assert gc.drift([1.0]) is None


def test_exit_code_and_table(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    args = gc.parse(["--backend", "jax", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")])
    ck = gc.Check(args, gc.Devices(use_nvml=False))
    ck.rows["jax"] = {"exactness": gc.Row("exactness", "held", "bitwise"), "memory": gc.gpu_only("memory")}
    assert gc.exit_code(ck) == 0
    text = gc.render(ck)
    assert "  2 memory     " + GPU_ONLY["memory"] in text
    assert "result: every promise checked held (1 held, 1 skipped)" in text
    ck.rows["jax"]["trials"] = gc.Row("trials", "not run", "the time budget (480 s) was spent")
    assert gc.exit_code(ck) == 3
    ck.rows["jax"]["boundary"] = gc.Row("boundary", "broken", "×3 (≤ 1.5)")
    assert gc.exit_code(ck) == 1
    ck.save()
    saved = json.loads((tmp_path / "o" / "gpu-check.json").read_text())
    assert saved["schema"] == gc.SCHEMA and saved["exit_code"] == 1
    assert saved["backends"]["jax"]["checks"]["boundary"]["status"] == "broken"


# -- the CPU path, end to end --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.bench
@pytest.mark.jax
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed (the test extra has it)")
def test_quick_cpu_run_checks_exactness_and_trials_and_names_what_needs_a_gpu(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--quick", "--backend", "jax", "--out", out, "--work", tmp_path / "w"],
        cwd=ROOT,
        env=cli_env(CUDA_VISIBLE_DEVICES=""),  # the CPU path wherever the tests run
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert_exit(proc, 0)
    table = proc.stdout[proc.stdout.index("segtrain GPU check at") :]
    rows = {line.split()[1]: line for line in table.splitlines() if line[:3].strip().isdigit()}
    assert list(rows) == ["exactness", "memory", "prestart", "boundary", "trials", "distribute"]
    assert "held: segments of 2 in process isolation = one segment, bitwise" in rows["exactness"]
    assert "held: 3 trials of 2 epochs: segtrain (a fresh worker per trial) peak RSS" in rows["trials"]
    for check, text in GPU_ONLY.items():
        assert rows[check].endswith(text), rows[check]
    assert rows["distribute"].endswith("skipped: needs a GPU (data-parallel training over every GPU)")
    assert "result: every promise checked held (2 held, 4 skipped)" in table

    result = json.loads((out / "gpu-check.json").read_text())
    assert result["schema"] == "segtrain-gpu-check/1" and result["exit_code"] == 0 and result["gpu"] is False
    checks = result["backends"]["jax"]["checks"]
    assert checks["exactness"]["data"]["comparisons"][0]["equal"] is True
    assert len(checks["trials"]["data"]["segtrain"]) == 3 and len(checks["trials"]["data"]["in_process"]) == 3
    # the sampling the GPU figures come from ran too, on RSS: both segments' workers, the waiting one seen
    stand_in = checks["memory"]["data"]["cpu_stand_in"]
    assert len(stand_in["segment_pids"]) == 2 and all(stand_in["segments_rss_mb"])
    assert stand_in["waiting_workers"] >= 1 and stand_in["waiting_samples"] >= 1
    assert (out / "gpu-check.md").exists() and (out / "gpu-check-logs.tar.gz").exists()

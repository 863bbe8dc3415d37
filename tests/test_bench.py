"""The benchmark suite runs end to end in --quick mode and writes results of the documented shape.

Only the structure is checked, never a time: the numbers of a --quick run mean nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, assert_exit, cli_env

pytestmark = [pytest.mark.bench, pytest.mark.slow]


def test_quick_clean_workload_writes_markdown_and_json(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            "--quick",
            "--workloads",
            "clean",
            "--variants",
            "naive,session,process,process-auto",
            "--out",
            str(out),
            "--name",
            "quick",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert_exit(proc, 0)
    assert "wall s: naive / session / process" in proc.stdout

    result = json.loads((out / "quick.json").read_text())
    assert result["schema"] == "segtrain-bench/1"
    assert result["quick"] is True and result["ok"] is True
    assert result["command"].startswith("python bench/run.py --quick")
    for key in ("cpu_model", "cpus", "ram_gb", "python", "tensorflow", "keras", "git_commit"):
        assert key in result["machine"]
    assert set(result["workloads"]) == {"clean"}

    clean = result["workloads"]["clean"]
    assert clean["kind"] == "training"
    assert clean["variants"] == ["naive", "session", "process", "process-auto"]
    epochs, segment = clean["epochs"], clean["segment"]
    n_windows = -(-epochs // segment)
    assert n_windows >= 2

    runs = {r["variant"]: r for r in clean["runs"]}
    assert [r["variant"] for r in clean["runs"]] == clean["variants"]  # one repeat, in order
    for run in runs.values():
        assert run["ok"] and run["exit_code"] == 0
        assert run["wall_seconds"] > 0
        assert [e["epoch"] for e in run["epochs"]] == list(range(epochs))
        assert all(e["seconds"] > 0 and e["rss_mb"] > 0 for e in run["epochs"])
        assert len(run["windows"]) == n_windows
        assert run["windows"][0]["slowdown"] == 1.0
        for w in run["windows"]:
            assert {"start_epoch", "end_epoch", "seconds_per_epoch", "slowdown", "rss_mb_max", "rss_growth"} <= set(w)
    for variant in ("session", "process"):
        run = runs[variant]
        assert run["report"]["status"] == "finished"
        assert run["report"]["isolation"] == variant
        assert run["report"]["epochs_done"] == epochs
        assert [s["index"] for s in run["segments"]] == list(range(n_windows))
        assert all(s["boundary_seconds"] is not None for s in run["segments"])
    assert len({e["pid"] for e in runs["process"]["epochs"]}) == n_windows  # a worker per segment
    assert len({e["pid"] for e in runs["session"]["epochs"]}) == 1

    summary = clean["summary"]
    assert summary["naive"]["wall_ratio"] == 1.0
    for variant in ("naive", "session", "process"):
        s = summary[variant]
        assert len(s["window_slowdowns"]) == n_windows
        assert s["wall_seconds"] > 0 and s["wall_ratio"] > 0
    assert len(summary["process"]["report_slowdowns"]) == n_windows
    auto = runs["process-auto"]
    assert auto["report"]["status"] == "finished" and auto["report"]["epochs_done"] == epochs
    assert auto["command"].split("--segment ")[1].startswith("auto")
    assert summary["process-auto"]["segment_counts"] == [len(auto["segments"])]
    assert summary["process-auto"]["segment_ends"][0][-1] == epochs

    targets = result["targets"]
    assert targets and {t["workload"] for t in targets} == {"clean"}
    assert targets[0]["target"] == "process total wall / naive total wall"
    for t in targets:
        assert {"target", "value", "threshold", "op", "met", "quick"} <= set(t)
        assert t["quick"] is True and isinstance(t["met"], bool)

    md = (out / "quick.md").read_text()
    assert "## Headline" in md and "## Targets (issue 5)" in md
    assert "## `--segment auto` against fixed segments" in md
    assert result["command"] in md and result["machine"]["cpu_model"] in md


def test_import_contention_prints_a_row_per_mode(tmp_path):
    out = tmp_path / "contention.md"
    proc = subprocess.run(
        [
            sys.executable,
            "bench/import_contention.py",
            "--quick",
            "--epochs",
            "3",
            "--repeats",
            "1",
            "--every",
            "0.2",
            "--modes",
            "nice19,alloc19",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert_exit(proc, 0)
    table = out.read_text()
    assert table.startswith("Command: `python bench/import_contention.py --epochs 3 --repeats 1")
    lines = table.splitlines()
    rows = {line.split("|")[1].strip(): line for line in lines[lines.index("|---|---|---|---|---|---|---|---|") + 1 :]}
    assert set(rows) == {"none", "nice19", "alloc19"}
    assert float(rows["alloc19"].split("|")[6]) >= 1  # competitors per fit
    assert rows["none"].split("|")[4].strip() == "1.000"  # × none


def test_sweep_bench_quick_runs_the_peers_and_segtrain_both_ways(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "bench/sweep.py",
            "--quick",
            "--trials",
            "2",
            "--out",
            str(out),
            "--name",
            "quick",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_exit(proc, 0)
    result = json.loads((out / "quick.json").read_text())
    assert result["schema"] == "segtrain-bench-sweep/1" and result["ok"] is True and result["quick"] is True
    assert result["config"]["trials"] == 2 and result["config"]["epochs"] == 1
    assert [r["peer"] for r in result["runs"]] == ["optuna", "segtrain", "segtrain-spawn", "kerastuner"]
    for run in result["runs"]:
        assert [t["number"] for t in run["trials"]] == [0, 1]
        assert all(t["rss_mb"] > 0 and len(t["epoch_seconds"]) == 1 and t["train_seconds"] > 0 for t in run["trials"])
    assert result["same_params"] == "yes"  # segtrain's and the Optuna loop's random samplers, same seed
    assert result["summary"]["optuna"]["wall_ratio"] == 1.0
    segtrain = result["summary"]["segtrain"]
    assert set(segtrain["split_median"]) >= {"start_seconds", "load_seconds", "save_seconds", "first_epoch_seconds"}
    assert all(t["target"].startswith("segtrain") for t in result["targets"])

    md = (out / "quick.md").read_text()
    table = md.split("## Result")[1].split("## Targets")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "peer" not in line]
    assert [row.split("|")[1].strip().split()[0] for row in rows] == ["Optuna", "segtrain", "segtrain", "KerasTuner"]
    assert result["command"] in md and "## Where segtrain's time goes" in md


@pytest.mark.jax
def test_hosts_bench_quick_runs_one_process_against_two_and_checks_their_weights_equal(tmp_path):
    out = tmp_path / "results"
    args = ["bench/hosts.py", "--quick", "--epochs", "2", "--segment", "1", "--rounds", "1", "--out", str(out)]
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert_exit(proc, 0)
    (result,) = [json.loads(p.read_text()) for p in out.glob("hosts-*.json")]
    assert result["schema"] == "segtrain-bench-hosts/1" and result["command"].startswith("python bench/hosts.py")
    summary = result["summary"]
    assert list(summary) == [
        "one process, one segment",
        "one process, segments",
        "two processes, one segment",
        "two processes, segments",
    ]
    assert summary["one process, one segment"]["wall_ratio"] == 1.0
    assert [s["segments"] for s in summary.values()] == [1, 2, 1, 2]
    assert all(s["replicas"] == [2] for s in summary.values())  # two devices in one process, or one in each
    assert "final weights of all four equal, bitwise" in proc.stdout


def test_search_script_bench_quick_runs_the_script_with_python_and_segtrain_run(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "bench/search_script.py", "--quick", "--trials", "2", "--out", str(out)],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert_exit(proc, 0)
    (found,) = out.glob("*-search-script.json")
    result = json.loads(found.read_text())
    assert result["schema"] == "segtrain-bench-search-script/1" and result["trials"] == 2
    assert [r["peer"] for r in result["runs"]] == ["python", "segtrain-run"]
    for run in result["runs"]:
        assert run["exit_code"] == 0 and len(run["peak_rss_mb"]) == 2 and all(p > 0 for p in run["peak_rss_mb"])
    assert result["same_params"] == "yes"  # the driver's seeded sampler draws what the plain loop draws
    assert "| segtrain-run |" in found.with_suffix(".md").read_text()

"""segtrain's benchmark suite: naive `fit` against segtrain's session and process isolation.

    .venv/bin/python bench/run.py            # the full suite (~20 min on 2 cores)
    .venv/bin/python bench/run.py --quick    # tiny epochs, a smoke test (~1 min a workload)

Every workload runs its variants side by side in one invocation, each in its
own fresh process, interleaved (repeat 1 in the listed order, repeat 2 in the
reverse order, ...) so that a noisy machine drifts over all of them alike:

* `naive`: bench/naive.py, one plain `model.fit` over all epochs in one process;
* `session`: `segtrain fit --isolation session`;
* `process`: `segtrain fit --isolation process` (the next worker pre-started);
* `process-auto`: the same with `--segment auto`; `process-s<N>`: with segments of N,
  a second fixed length to set `auto` against;
* diagnostics for the clean workload: `naive-pipeline` (one `fit` fed by
  segtrain's data pipeline) and `process-noprestart`.

The naive epochs are grouped into the same windows as segtrain's segments, and
every variant's windows are summarised alike (see bench/README.md): seconds
per epoch (median, the window's first epoch left out), slowdown against window
1, RSS at the end of each epoch. segtrain variants add `segtrain report --json`
(true peak RSS per segment, boundary seconds split into start/clear/load/save).

Results: a markdown and a JSON file, `<date>-<machine>.md/.json`, in
bench/results (full suite) or bench/runs/quick (--quick), with the machine and
the exact command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORKLOADS_DIR = BENCH / "workloads"
SCHEMA = "segtrain-bench/1"


@dataclass
class Workload:
    name: str
    title: str
    script: str | None  # a segtrain script in bench/workloads; None: the save/load micro-benchmark
    epochs: int = 0
    segment: int = 0
    repeats: int = 1
    variants: tuple[str, ...] = ("naive", "session", "process")
    optional: tuple[str, ...] = ()  # run only when named in --variants
    quick_epochs: int = 4
    quick_segment: int = 2
    leak: bool = False
    notes: str = ""
    extra: dict = field(default_factory=dict)


# `process-auto` is `--segment auto`; `process-s<N>` another fixed segment length, to set beside it.
LEAK_VARIANTS = ("naive", "session", "process", "process-auto")

WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    Workload("clean", "clean MLP, no leak", "clean.py", epochs=50, segment=10, repeats=2,
             variants=("naive", "session", "process", "process-auto", "process-s25", "naive-pipeline"),
             optional=("process-noprestart",),
             notes="segtrain's own overhead against one plain fit"),
    Workload("probe", "leak: a linear-probe callback trains a new model every epoch", "probe.py",
             epochs=24, segment=6, leak=True, variants=(*LEAK_VARIANTS, "process-s12")),
    Workload("retrace", "leak: a tf.function retraced with a Python float every step", "retrace.py",
             epochs=24, segment=6, leak=True, variants=(*LEAK_VARIANTS, "process-s12")),
    Workload("recompile", "leak: model.compile every epoch to change the learning rate", "recompile.py",
             epochs=24, segment=6, leak=True, variants=(*LEAK_VARIANTS, "process-s12")),
    Workload("tf1", "TF1 graph mode: ops added to a process-wide graph every step (train_epoch)",
             "tf1_graph.py", epochs=12, segment=3, leak=True, variants=(*LEAK_VARIANTS, "process-s6"),
             notes="the original form of the problem; Keras fit cannot run it, train_epoch() does"),
    Workload("saveload", "~50M-parameter model + Adam: save and load per format", None, repeats=1,
             variants=("keras", "h5", "savedmodel"), extra={"params": 50e6, "quick_params": 1e6}),
]}
DIAGNOSTIC_VARIANTS = {"naive-pipeline", "process-noprestart"}

# Targets of issue 5.
CLEAN_WALL_RATIO = 1.03
LEAK_SLOWDOWN = 1.05
LEAK_RSS_GROWTH = 1.05
H5_OVER_KERAS = 0.6


# -- the machine ---------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict[str, Any]:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    virt = None
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"Hypervisor vendor:\s*(.+)", lscpu)
        virt = m.group(1).strip() if m else None
    except (OSError, subprocess.SubprocessError):
        pass
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "segtrain", "bench")
    return {
        "cpu_model": _cpu_model(),
        "cpus": cpus,
        "ram_gb": _ram_gb(),
        "hypervisor": virt,
        "os": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow") or _version("tensorflow-cpu"),
        "keras": _version("keras"),
        "numpy": _version("numpy"),
        "segtrain": _version("segtrain"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty_paths": dirty.splitlines() if dirty else [],
        "gpu": None,  # CPU-only suite; TF is started with its own defaults in every process
    }


def machine_slug(m: dict[str, Any]) -> str:
    model = m["cpu_model"].lower()
    model = re.sub(r"\(r\)|\(tm\)|cpu|processor|intel|amd|@", " ", model)
    words = [w for w in re.split(r"[^a-z0-9.]+", model) if w]
    return "-".join(words[:3] + [f"{m['cpus']}cpu"])


# -- one run -------------------------------------------------------------------

def _env(quick: bool) -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.pop("BENCH_QUICK", None)
    if quick:
        env["BENCH_QUICK"] = "1"
    return env


def _run_process(cmd: list[str], log: Path, env: dict, timeout: float) -> dict[str, Any]:
    """Run `cmd` to completion: its exit code, wall seconds (spawn to exit), CPU seconds, output tail.

    CPU seconds are user + system time of the process and every descendant it waited for (segtrain's
    workers, pre-started ones included): less sensitive than wall time to other jobs on the machine.
    """
    import resource

    log.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "w") as f:
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = -9
        wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"exit_code": code, "ok": code == 0, "wall_seconds": wall, "cpu_seconds": cpu,
            "loadavg_1min": [load_before, os.getloadavg()[0]],  # before and after the run
            "tail": "\n".join(log.read_text(errors="replace").splitlines()[-15:])}


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def windows(epochs: list[dict], segment: int, total: int) -> list[dict]:
    """Per-window summary of per-epoch records (epoch, seconds, rss_mb), as segtrain's report defines it."""
    out = []
    first = None
    for start in range(0, total, segment):
        rows = [e for e in epochs if start <= e["epoch"] < start + segment]
        if not rows:
            continue
        secs = [e["seconds"] for e in rows]
        spe = statistics.median(secs[1:] if len(secs) > 1 else secs)
        rss = [e["rss_mb"] for e in rows if e.get("rss_mb") is not None]
        w = {"index": len(out), "start_epoch": start, "end_epoch": start + len(rows),
             "seconds_per_epoch": spe, "first_epoch_seconds": secs[0], "epoch_seconds_sum": sum(secs),
             "rss_mb_max": max(rss) if rss else None, "rss_mb_last": rss[-1] if rss else None}
        if first is None:
            first = w
        w["slowdown"] = spe / first["seconds_per_epoch"]
        w["rss_growth"] = (w["rss_mb_max"] / first["rss_mb_max"]) if rss and first["rss_mb_max"] else None
        out.append(w)
    return out


def segment_option(variant: str, segment: int) -> str:
    """`--segment` for a segtrain variant: `auto`, `s<N>`'s N, or the workload's own length."""
    if variant == "process-auto":
        return "auto"
    fixed = re.fullmatch(r"process-s(\d+)", variant)
    return fixed.group(1) if fixed else str(segment)


def run_training(w: Workload, variant: str, repeat: int, order: int, quick: bool, runs_dir: Path,
                 fmt: str, timeout: float) -> dict:
    epochs = w.quick_epochs if quick else w.epochs
    segment = w.quick_segment if quick else w.segment
    script = WORKLOADS_DIR / w.script
    name = f"{w.name}.{variant}.r{repeat + 1}"
    folder = runs_dir / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rel = lambda p: os.path.relpath(p, ROOT)  # noqa: E731
    if variant.startswith("naive"):
        out = folder / "naive.json"
        pipeline = "segtrain" if variant == "naive-pipeline" else "keras"
        cmd = [sys.executable, rel(BENCH / "naive.py"), rel(script), "--epochs", str(epochs), "--seed", "0",
               "--pipeline", pipeline, "--out", rel(out)]
    else:
        isolation = "session" if variant == "session" else "process"
        run_dir = folder / "run"
        cmd = [sys.executable, "-m", "segtrain", "fit", rel(script), "--epochs", str(epochs), "--segment",
               segment_option(variant, segment), "--run-dir", rel(run_dir), "--seed", "0", "--isolation", isolation,
               "--format", fmt, "--no-progress"]
        if variant == "process-noprestart":
            cmd.append("--no-prestart")
    proc = _run_process(cmd, runs_dir / "logs" / f"{name}.log", _env(quick), timeout)
    tail, wall = proc.pop("tail"), proc["wall_seconds"]
    record: dict[str, Any] = {"variant": variant, "repeat": repeat + 1, "order": order,
                              "command": shlex.join(["python", *cmd[1:]]), **proc}
    if not proc["ok"]:
        record["error"] = tail
        return record
    if variant.startswith("naive"):
        res = json.loads(out.read_text())
        ep = res["epochs"]
        record.update(peak_rss_mb=res["peak_rss_mb"], timings=res["timings"])
        # time inside fit but outside every epoch (setup before the first, anything between epochs)
        record["fit_gap_seconds"] = (res["timings"]["fit_end"] - res["timings"]["fit_start"]
                                     - sum(e["seconds"] for e in ep))
        record["other_seconds"] = wall - sum(e["seconds"] for e in ep) - record["fit_gap_seconds"]
    else:
        ep = [{"epoch": e["epoch"], "seconds": e["seconds"], "rss_mb": e.get("rss_mb"), "pid": e.get("pid")}
              for e in {e["epoch"]: e for e in _read_jsonl(run_dir / "epochs.jsonl")}.values()]
        ep.sort(key=lambda e: e["epoch"])
        rep = subprocess.run([sys.executable, "-m", "segtrain", "report", rel(run_dir), "--json"], cwd=ROOT,
                             env=_env(quick), capture_output=True, text=True, timeout=120)
        report = json.loads(rep.stdout)
        keys = ("index", "start_epoch", "end_epoch", "seconds", "train_seconds", "seconds_per_epoch",
                "first_epoch_seconds", "retrace_seconds", "slowdown", "peak_rss_mb", "memory_growth",
                "boundary_seconds", "start_seconds", "clear_seconds", "load_seconds", "save_seconds", "pid")
        record["segments"] = [{k: s.get(k) for k in keys} for s in report["segments"]]
        reasons = {r["index"]: r.get("boundary_reason") for r in _read_jsonl(run_dir / "segments.jsonl")}
        for seg in record["segments"]:
            seg["boundary_reason"] = reasons.get(seg["index"])
        record["report"] = {k: report.get(k) for k in ("status", "epochs_total", "epochs_done", "isolation",
                                                        "seconds", "train_seconds", "boundary_seconds",
                                                        "overhead_seconds", "boundary_overhead")}
        record["ok"] = report.get("status") == "finished" and report.get("epochs_done") == epochs
        segs = record["segments"]
        record["boundary_seconds_sum"] = sum(s["boundary_seconds"] or 0.0 for s in segs)
        record["fit_gap_seconds"] = sum(s["train_seconds"] or 0.0 for s in segs) - sum(e["seconds"] for e in ep)
        record["retrace_seconds_sum"] = sum(max(s["retrace_seconds"] or 0.0, 0.0) for s in segs[1:])
        record["other_seconds"] = (wall - sum(e["seconds"] for e in ep) - record["fit_gap_seconds"]
                                   - record["boundary_seconds_sum"])
        record["peak_rss_mb"] = max((s["peak_rss_mb"] or 0.0) for s in segs) if segs else None
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        for ck in run_dir.glob("ckpt-*"):
            shutil.rmtree(ck, ignore_errors=True)  # the numbers are in the logs; free the disk
    record["epochs"] = ep
    record["epoch_seconds_sum"] = sum(e["seconds"] for e in ep)
    record["windows"] = windows(ep, segment, epochs)
    return record


def run_saveload(w: Workload, fmt: str, repeat: int, order: int, quick: bool, runs_dir: Path,
                 timeout: float) -> dict:
    params = w.extra["quick_params"] if quick else w.extra["params"]
    name = f"{w.name}.{fmt}.r{repeat + 1}"
    folder = runs_dir / name
    shutil.rmtree(folder, ignore_errors=True)
    out = runs_dir / f"{name}.json"
    rel = lambda p: os.path.relpath(p, ROOT)  # noqa: E731
    cmd = [sys.executable, rel(BENCH / "saveload.py"), "--format", fmt, "--params", f"{params:g}",
           "--dir", rel(folder), "--out", rel(out)] + (["--segtrain-first"] if repeat % 2 else [])
    proc = _run_process(cmd, runs_dir / "logs" / f"{name}.log", _env(quick), timeout)
    tail = proc.pop("tail")
    record: dict[str, Any] = {"variant": fmt, "repeat": repeat + 1, "order": order,
                              "command": shlex.join(["python", *cmd[1:]]), **proc}
    if not proc["ok"]:
        record["error"] = tail
        return record
    record.update(json.loads(out.read_text()))
    return record


# -- summaries -----------------------------------------------------------------

def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarise_training(w: Workload, runs: list[dict]) -> dict:
    summary: dict[str, Any] = {}
    for variant in w.variants:
        mine = [r for r in runs if r["variant"] == variant and r["ok"]]
        if not mine:
            summary[variant] = {"ok": False}
            continue
        n_windows = min(len(r["windows"]) for r in mine)
        slowdowns = [_median([r["windows"][i]["slowdown"] for r in mine]) for i in range(n_windows)]
        rss_growths = [_median([r["windows"][i]["rss_growth"] for r in mine]) for i in range(n_windows)]
        s = {
            "ok": len(mine) == sum(1 for r in runs if r["variant"] == variant),
            "repeats": len(mine),
            "wall_seconds": _median([r["wall_seconds"] for r in mine]),
            "wall_seconds_each": [r["wall_seconds"] for r in mine],
            "cpu_seconds": _median([r["cpu_seconds"] for r in mine]),
            "fit_gap_seconds": _median([r.get("fit_gap_seconds") for r in mine]),
            "epoch_seconds_sum": _median([r["epoch_seconds_sum"] for r in mine]),
            "other_seconds": _median([r["other_seconds"] for r in mine]),
            "window_slowdowns": slowdowns,
            "window_rss_growths": rss_growths,
            "last_slowdown": slowdowns[-1],
            "last_rss_growth": rss_growths[-1],
            "rss_mb_first": _median([r["windows"][0]["rss_mb_max"] for r in mine]),
            "rss_mb_last": _median([r["windows"][n_windows - 1]["rss_mb_max"] for r in mine]),
            "peak_rss_mb": _median([r.get("peak_rss_mb") for r in mine]),
        }
        if "segments" in mine[0]:
            segs = [r["segments"] for r in mine]
            n_segs = min(len(sg) for sg in segs)  # `--segment auto` may cut differently in each repeat
            s["segment_counts"] = [len(sg) for sg in segs]
            s["segment_ends"] = [[seg["end_epoch"] for seg in sg] for sg in segs]
            s["report_slowdowns"] = [_median([sg[i]["slowdown"] for sg in segs]) for i in range(n_segs)]
            s["report_peak_rss_mb"] = [_median([sg[i]["peak_rss_mb"] for sg in segs]) for i in range(n_segs)]
            s["report_last_slowdown"] = _median([sg[-1]["slowdown"] for sg in segs])
            s["report_last_memory_growth"] = _median([sg[-1]["memory_growth"] for sg in segs])
            s["report_max_memory_growth"] = _median([max(seg["memory_growth"] or 0.0 for seg in sg) for sg in segs])
            s["boundary_seconds_sum"] = _median([r["boundary_seconds_sum"] for r in mine])
            s["retrace_seconds_sum"] = _median([r["retrace_seconds_sum"] for r in mine])
            for part in ("start_seconds", "clear_seconds", "load_seconds", "save_seconds"):
                # per boundary (segments 2..n), median over boundaries and repeats
                s[f"boundary_{part}"] = _median([sg[i][part] for sg in segs for i in range(1, len(sg))])
            s["first_start_seconds"] = _median([sg[0]["start_seconds"] for sg in segs])
        summary[variant] = s
    base = summary.get("naive", {}).get("wall_seconds")
    for variant, s in summary.items():
        if s.get("ok") is not False or "wall_seconds" in s:
            s["wall_ratio"] = _ratio(s.get("wall_seconds"), base)
            s["cpu_ratio"] = _ratio(s.get("cpu_seconds"), summary.get("naive", {}).get("cpu_seconds"))
            s["epoch_seconds_ratio"] = _ratio(s.get("epoch_seconds_sum"),
                                              summary.get("naive", {}).get("epoch_seconds_sum"))
    # the ratio per repeat pair (variant i and naive of the same repeat): the least drift-sensitive one
    for variant, s in summary.items():
        pairs = []
        for r in runs:
            if r["variant"] != variant or not r["ok"]:
                continue
            n = [x for x in runs if x["variant"] == "naive" and x["repeat"] == r["repeat"] and x["ok"]]
            if n:
                pairs.append(r["wall_seconds"] / n[0]["wall_seconds"])
        s["wall_ratio_per_repeat"] = pairs
    return summary


def targets_training(w: Workload, summary: dict, quick: bool) -> list[dict]:
    out = []
    p = summary.get("process", {})
    if w.name == "clean":
        value = p.get("wall_ratio")
        out.append({"workload": w.name, "target": "process total wall / naive total wall",
                    "value": value, "threshold": CLEAN_WALL_RATIO, "op": "<=",
                    "met": value is not None and value <= CLEAN_WALL_RATIO})
        npipe = summary.get("naive-pipeline", {})
        if npipe.get("wall_seconds"):
            value = _ratio(p.get("wall_seconds"), npipe["wall_seconds"])
            out.append({"workload": w.name, "target": "process total wall / naive-pipeline total wall (context: "
                        "the same data pipeline in one fit)", "value": value, "threshold": CLEAN_WALL_RATIO,
                        "op": "<=", "met": value is not None and value <= CLEAN_WALL_RATIO})
        value = p.get("cpu_ratio")
        out.append({"workload": w.name, "target": "process CPU seconds / naive CPU seconds (context)",
                    "value": value, "threshold": CLEAN_WALL_RATIO, "op": "<=",
                    "met": value is not None and value <= CLEAN_WALL_RATIO})
    if w.leak:
        n = summary.get("naive", {})
        sd = p.get("report_last_slowdown")
        mg = p.get("report_last_memory_growth")
        out.append({"workload": w.name, "target": "process: last segment's slowdown", "value": sd,
                    "threshold": LEAK_SLOWDOWN, "op": "<=", "met": sd is not None and sd <= LEAK_SLOWDOWN})
        out.append({"workload": w.name, "target": "process: last segment's peak RSS / segment 1's", "value": mg,
                    "threshold": LEAK_RSS_GROWTH, "op": "<=", "met": mg is not None and mg <= LEAK_RSS_GROWTH})
        grows = n.get("last_rss_growth")
        out.append({"workload": w.name, "target": "naive grows: last window's RSS / window 1's (context)",
                    "value": grows, "threshold": LEAK_RSS_GROWTH, "op": ">",
                    "met": grows is not None and grows > LEAK_RSS_GROWTH})
    for t in out:
        t["quick"] = quick
    return out


def summarise_saveload(w: Workload, runs: list[dict]) -> dict:
    summary: dict[str, Any] = {}
    for fmt in w.variants:
        mine = [r for r in runs if r["variant"] == fmt and r["ok"]]
        if not mine:
            summary[fmt] = {"ok": False}
            continue
        s: dict[str, Any] = {"ok": True, "repeats": len(mine), "params": mine[0]["params"],
                             "size_mb": mine[0]["raw"]["size_mb"], "peak_rss_mb": _median([r["peak_rss_mb"] for r in mine])}
        for path in ("raw", "segtrain"):
            keys = sorted(k for k in mine[0][path] if k.endswith("_seconds"))
            s[path] = {k: _median([r[path][k] for r in mine]) for k in keys}
        s["raw"]["restores_optimizer"] = all(r["raw"]["restores_optimizer"] for r in mine)
        summary[fmt] = s
    return summary


def targets_saveload(w: Workload, summary: dict, quick: bool) -> list[dict]:
    out = []
    for path in ("raw", "segtrain"):
        k, h = summary.get("keras", {}).get(path), summary.get("h5", {}).get(path)
        value = _ratio(h["total_seconds"], k["total_seconds"]) if k and h else None
        label = "Keras calls + fsync" if path == "raw" else "segtrain's checkpoint path"
        out.append({"workload": w.name, "target": f"h5 (save + load) / keras (save + load), {label}",
                    "value": value, "threshold": H5_OVER_KERAS, "op": "<=",
                    "met": value is not None and value <= H5_OVER_KERAS, "quick": quick})
    return out


# -- printing ------------------------------------------------------------------

def _f(value: Any, spec: str = ".2f", none: str = "–") -> str:
    return none if value is None else format(value, spec)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def training_table(variants, summary: dict) -> str:
    rows = []
    for variant in variants:
        s = summary.get(variant, {})
        if "wall_seconds" not in s:
            rows.append([variant + (" (diagnostic)" if variant in DIAGNOSTIC_VARIANTS else ""), "failed"] + [""] * 11)
            continue
        slow = " ".join(_f(x) for x in s["window_slowdowns"])
        rows.append([
            variant + (" (diagnostic)" if variant in DIAGNOSTIC_VARIANTS else ""),
            _f(s["wall_seconds"], ".1f") + (" (" + ", ".join(_f(x, ".1f") for x in s["wall_seconds_each"]) + ")"
                                            if len(s["wall_seconds_each"]) > 1 else ""),
            _f(s.get("wall_ratio"), ".3f"),
            _f(s["cpu_seconds"], ".1f"),
            _f(s.get("cpu_ratio"), ".3f"),
            _f(s["epoch_seconds_sum"], ".1f"),
            _f(s.get("fit_gap_seconds"), ".1f"),
            _f(s.get("boundary_seconds_sum"), ".1f"),
            _f(s.get("retrace_seconds_sum"), ".1f"),
            _f(s["other_seconds"], ".1f"),
            slow,
            f"{_f(s['rss_mb_first'], '.0f')} → {_f(s['rss_mb_last'], '.0f')} (×{_f(s['last_rss_growth'], '.3f')})",
            _f(s.get("report_last_memory_growth"), ".3f") if "report_peak_rss_mb" in s else
            _f(s.get("peak_rss_mb"), ".0f") + " MB",
        ])
    header = ["variant", "wall s", "× naive", "CPU s", "CPU × naive", "Σ epochs s", "fit gap s", "Σ boundary s",
              "Σ retrace s", "other s",
              "slowdown per segment", "RSS MB seg 1 → last (epoch ends)", "peak RSS last ÷ seg 1 (report)"]
    return _table(header, rows)


def boundary_table(variants, summary: dict) -> str:
    rows = []
    for variant in variants:
        s = summary.get(variant, {})
        if "boundary_start_seconds" not in s:
            continue
        rows.append([variant, _f(s.get("first_start_seconds")), _f(s.get("boundary_start_seconds")),
                     _f(s.get("boundary_clear_seconds")), _f(s.get("boundary_load_seconds")),
                     _f(s.get("boundary_save_seconds")),
                     " ".join(_f(x) for x in s.get("report_slowdowns", []))])
    if not rows:
        return ""
    return _table(["variant", "first start s", "start s / boundary", "clear s / boundary", "load s / boundary",
                   "save s / segment", "report slowdowns"], rows)


def segmenting_table(variants, summary: dict) -> str:
    """Fixed segment lengths against `--segment auto`, all in process isolation."""
    fixed = summary.get("process", {}).get("wall_seconds")
    rows = []
    for variant in variants:
        s = summary.get(variant, {})
        if not variant.startswith("process") or "segment_counts" not in s:
            continue
        counts = sorted(set(s["segment_counts"]))
        ends = s["segment_ends"][0]
        rows.append([variant, "/".join(str(c) for c in counts),
                     ", ".join(str(e) for e in ends[:-1]) or "none",
                     _f(s["wall_seconds"], ".1f"), _f(s.get("wall_ratio"), ".3f"), _f(_ratio(s["wall_seconds"], fixed), ".3f"),
                     _f(s.get("last_slowdown")), _f(s.get("last_rss_growth"), ".3f"),
                     _f(s.get("report_max_memory_growth"), ".3f")])
    if len(rows) < 2:
        return ""
    return _table(["variant", "segments", "boundaries after epoch (repeat 1)", "wall s", "× naive", "× process",
                   "last window's slowdown", "last window's RSS ÷ window 1", "worst segment's peak RSS ÷ seg 1"],
                  rows)


def auto_headline(result: dict) -> str:
    rows = []
    for name, wr in result["workloads"].items():
        s = wr.get("summary", {})
        if wr["kind"] != "training" or "segment_counts" not in s.get("process-auto", {}):
            continue
        n, p, a = s.get("naive", {}), s.get("process", {}), s["process-auto"]
        rows.append([name, str(wr["epochs"]), _f(n.get("last_slowdown")),
                     f"{wr['segment']} → {'/'.join(str(c) for c in sorted(set(p.get('segment_counts', []))))}",
                     _f(p.get("wall_ratio"), ".3f"), _f(p.get("last_slowdown")),
                     "/".join(str(c) for c in sorted(set(a["segment_counts"]))),
                     _f(a.get("wall_ratio"), ".3f"), _f(a.get("last_slowdown")),
                     _f(a.get("last_rss_growth"), ".3f")])
    if not rows:
        return ""
    return _table(["workload", "epochs", "naive: last window's slowdown", "fixed: length → segments",
                   "fixed: wall × naive", "fixed: last window's slowdown", "auto: segments", "auto: wall × naive",
                   "auto: last window's slowdown", "auto: last window's RSS ÷ window 1"], rows)


def saveload_table(variants, summary: dict) -> str:
    rows = []
    for fmt in variants:
        s = summary.get(fmt, {})
        if not s.get("ok"):
            rows.append([fmt, "failed"] + [""] * 10)
            continue
        r, g = s["raw"], s["segtrain"]
        rows.append([fmt, _f(s["size_mb"], ".0f"), _f(r["write_seconds"]), _f(r["fsync_seconds"]),
                     _f(r["load_seconds"]) + (f" ({_f(r['rebuild_seconds'])} build)" if r["rebuild_seconds"] else ""),
                     _f(r["total_seconds"]), _f(g["save_seconds"]), _f(g["load_seconds"]), _f(g["total_seconds"]),
                     _f(g["checksum_seconds"]), _f(g.get("resume_check_seconds")),
                     "yes" if r["restores_optimizer"] else "NO"])
    return _table(["format", "MB", "raw write s", "raw fsync s", "raw load s", "raw save+load s",
                   "segtrain save s", "segtrain load s", "segtrain save+load s", "checksums s",
                   "resume check s", "optimizer restored"], rows)


def targets_table(targets: list[dict]) -> str:
    rows = [[t["workload"], t["target"], _f(t["value"], ".3f"), f"{t['op']} {t['threshold']}",
             ("**met**" if t["met"] else "**not met**") + (" (quick: not meaningful)" if t.get("quick") else "")]
            for t in targets]
    return _table(["workload", "target", "measured", "target", "result"], rows)


def headline_table(result: dict) -> str:
    rows = []
    for name, wr in result["workloads"].items():
        if wr["kind"] != "training":
            continue
        s = wr["summary"]
        n, se, p = s.get("naive", {}), s.get("session", {}), s.get("process", {})
        rows.append([
            name, f"{wr['epochs']} / {wr['segment']}",
            " / ".join(_f(x.get("wall_seconds"), ".1f") for x in (n, se, p)),
            " / ".join(_f(x.get("wall_ratio"), ".3f") for x in (se, p)),
            " / ".join(_f(x.get("cpu_ratio"), ".3f") for x in (se, p)),
            " / ".join(_f(x.get("last_slowdown")) for x in (n, se, p)),
            " / ".join(_f(x.get("last_rss_growth"), ".3f") for x in (n, se, p)),
            _f(p.get("report_last_memory_growth"), ".3f"),
        ])
    table = _table(["workload", "epochs / segment", "wall s: naive / session / process",
                    "wall × naive: session / process", "CPU × naive: session / process", "last-segment slowdown: naive / session / process",
                    "last-segment RSS ÷ seg 1: naive / session / process", "process peak RSS ÷ seg 1"], rows)
    sl = result["workloads"].get("saveload")
    if sl and sl.get("summary"):
        s = sl["summary"]
        cells = []
        for fmt in sl["variants"]:
            if s.get(fmt, {}).get("ok"):
                cells.append(f"{fmt} {_f(s[fmt]['raw']['total_seconds'])} s raw, "
                             f"{_f(s[fmt]['segtrain']['total_seconds'])} s via segtrain")
        params = next((v["params"] for v in s.values() if v.get("ok")), None)
        table += f"\n\nSave + load of a {params / 1e6:.1f}M-parameter model with Adam: " + "; ".join(cells) + "."
    return table


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"# segtrain benchmarks, {result['started'][:10]}" + (" (--quick: not meaningful)" if result["quick"] else ""),
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['ram_gb']} GB RAM"
        + (f", {m['hypervisor']} VM" if m.get("hypervisor") else "") + f"; {m['os']}  ",
        f"Software: Python {m['python']}, TensorFlow {m['tensorflow']}, Keras {m['keras']}, NumPy {m['numpy']}, "
        f"segtrain {m['segtrain']} at {(m['git_commit'] or '?')[:10]}"
        + (f" (uncommitted changes in {len(m['git_dirty_paths'])} files of segtrain/ and bench/)"
           if m["git_dirty_paths"] else "") + "  ",
        f"Suite: {result['suite_seconds'] / 60:.1f} min; load average {result['loadavg_start'][0]:.2f} at the start, "
        f"{result['loadavg_end'][0]:.2f} at the end (1 min). Every variant is a fresh process; variants run "
        "interleaved, repeat 2 in reverse order.",
        "",
        "## Headline",
        "",
        headline_table(result),
        "",
        "## Targets (issue 5)",
        "",
        targets_table(result["targets"]),
        "",
    ]
    auto = auto_headline(result)
    if auto:
        lines += ["## `--segment auto` against fixed segments (process isolation)", "", auto, ""]
    for name, wr in result["workloads"].items():
        lines += [f"## {name}: {wr['title']}", ""]
        if wr["kind"] == "training":
            lines += [f"`{wr['script']}`, {wr['epochs']} epochs in segments of {wr['segment']}, "
                      f"`--format {wr['format']}`, {wr['repeats']} repeat(s) per variant.", "",
                      training_table(wr["variants"], wr["summary"]), ""]
            b = boundary_table(wr["variants"], wr["summary"])
            if b:
                lines += ["Boundaries (medians over boundaries and repeats):", "", b, ""]
            seg = segmenting_table(wr["variants"], wr["summary"])
            if seg:
                lines += ["Where the boundaries fall: fixed lengths and `--segment auto`, process isolation:", "",
                          seg, ""]
        else:
            lines += [saveload_table(wr["variants"], wr["summary"]), ""]
        failed = [r for r in wr["runs"] if not r["ok"]]
        for r in failed:
            lines += [f"**{r['variant']} r{r['repeat']} failed** (exit {r['exit_code']}): `{r['command']}`", "",
                      "```", r.get("error", ""), "```", ""]
    lines += ["## Columns", "", COLUMNS, ""]
    return "\n".join(lines)


COLUMNS = """\
* **wall s**: spawn to exit of the variant's command (median of the repeats; each repeat in brackets).
  **× naive**: that ÷ the naive wall.
* **CPU s**: user + system seconds of the variant's process and all its descendants (segtrain's workers,
  pre-started ones included); less sensitive to other jobs on the machine than wall time. **CPU × naive**
  likewise.
* **Σ epochs s**: the sum of every epoch's seconds (`on_epoch_begin` to `on_epoch_end`, in segtrain's
  epochs.jsonl or the naive recorder). **fit gap s**: time inside `fit` outside every epoch (segtrain:
  Σ `train_seconds` − Σ epochs, which includes its own callback's per-epoch log line and fsync; naive:
  `fit` call − Σ epochs). **Σ boundary s**: the sum of segtrain's `boundary_seconds` (start or clear,
  load, saves; segment 1's start included). **Σ retrace s**: segments 2..n, first epoch minus the segment's
  seconds per epoch (already inside Σ epochs). **other s**: wall − Σ epochs − fit gap − Σ boundary:
  interpreter and TF import (naive), data, model build, exit, the supervisor.
* **Where the boundaries fall** and the `--segment auto` headline: every process-isolation variant of a
  workload (fixed lengths, `auto`); **segments** per repeat, the epochs after which repeat 1 cut,
  **× process** against the workload's fixed length; windows as in the slowdown column (the workload's
  fixed length, so that every variant is cut into the same windows).
* **slowdown per segment**: each window's seconds per epoch (median, its first epoch left out) ÷ window 1's;
  the naive run's epochs are grouped into the same windows as the segments.
* **RSS seg 1 → last (epoch ends)**: the highest RSS sampled at an epoch's end in window 1 and in the last
  window, of the training process (the worker in process isolation); comparable across variants.
  **peak RSS last ÷ seg 1 (report)**: segtrain's `memory_growth` (ru_maxrss of the segment's worker in
  process isolation; of the one process in session isolation, so it never falls there). Naive: its ru_maxrss.
* save/load: **raw** are the Keras/TF calls + fsync, load until the model can train again (building it
  included for h5/savedmodel); **segtrain** is a boundary's path: `fingerprint` + `checkpoint.save` (fsync
  while the files' CRC-32 runs) and `is_complete` (sizes: the supervisor has just seen it committed) +
  `load_model_files` + `verify`; **checksums** = CRC-32 of the files (timed alone; at save it overlaps the
  fsync) + the CRC-32 fingerprint of every variable at save and at load; **resume check** = `is_complete`
  reading every byte, what `segtrain resume` pays once before it loads (not in the total)."""


# -- main ----------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="segtrain's benchmark suite (see bench/README.md).")
    parser.add_argument("--quick", action="store_true", help="tiny epochs: a smoke test, numbers not meaningful")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated, from {', '.join(WORKLOADS)} (default: all)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per variant (default: per workload)")
    parser.add_argument("--no-diagnostics", action="store_true",
                        help="leave out the diagnostic variants (naive-pipeline, process-noprestart)")
    parser.add_argument("--format", default="keras", choices=("keras", "h5", "savedmodel"),
                        help="checkpoint format of the segtrain runs (default: keras)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the .md and .json (default: bench/results, or bench/runs/quick with --quick)")
    parser.add_argument("--name", default=None, help="file name without extension (default: <date>-<machine>)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="where the run directories and logs go (default: bench/runs/<timestamp>)")
    parser.add_argument("--epochs", type=int, default=None, help="override the training workloads' epochs")
    parser.add_argument("--segment", type=int, default=None, help="override the training workloads' segment length")
    parser.add_argument("--variants", default=None,
                        help="comma-separated training variants: naive, session, process, process-auto "
                             "(--segment auto), process-s<N> (segments of N), naive-pipeline, process-noprestart")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per variant run (default 900, quick 180)")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    started = dt.datetime.now().astimezone()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    runs_dir = (args.runs_dir or BENCH / "runs" / stamp).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    out_dir = (args.out or (BENCH / "runs" / "quick" if args.quick else BENCH / "results")).resolve()
    timeout = args.timeout or (180 if args.quick else 900)
    m = machine()
    command = shlex.join(["python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    result: dict[str, Any] = {
        "schema": SCHEMA, "command": command, "python_executable": sys.executable, "quick": args.quick,
        "started": started.isoformat(timespec="seconds"), "machine": m, "loadavg_start": list(os.getloadavg()),
        "runs_dir": os.path.relpath(runs_dir, ROOT), "workloads": {}, "targets": [],
    }
    t_suite = time.perf_counter()
    print(f"segtrain bench: {command}\n  {m['cpu_model']}, {m['cpus']} CPUs, {m['ram_gb']} GB; TF {m['tensorflow']}, "
          f"Keras {m['keras']}, Python {m['python']}; runs in {runs_dir}", flush=True)
    for name in names:
        w = WORKLOADS[name]
        if w.script is not None:
            over = {}
            if args.epochs:
                over["quick_epochs" if args.quick else "epochs"] = args.epochs
            if args.segment:
                over["quick_segment" if args.quick else "segment"] = args.segment
            w = Workload(**{**w.__dict__, **over})
        variants = tuple(v for v in w.variants if not (args.no_diagnostics and v in DIAGNOSTIC_VARIANTS))
        if args.variants and w.script is not None:
            wanted = [v.strip() for v in args.variants.split(",")]
            known = w.variants + w.optional + LEAK_VARIANTS
            unknown_v = [v for v in wanted if v not in known and not re.fullmatch(r"process-s\d+", v)]
            if unknown_v:
                parser.error(f"unknown variant(s) {', '.join(unknown_v)} for {name}; choose from "
                             f"{', '.join(dict.fromkeys(known))} or process-s<N>")
            variants = tuple(dict.fromkeys(v for v in known + tuple(wanted) if v in wanted))
        repeats = args.repeats or (1 if args.quick else w.repeats)
        wr: dict[str, Any] = {"title": w.title, "variants": list(variants), "repeats": repeats, "runs": []}
        print(f"\n== {name}: {w.title}", flush=True)
        order = 0
        for r in range(repeats):
            seq = variants if r == 0 else tuple(v for v in variants if v not in DIAGNOSTIC_VARIANTS)
            seq = seq if r % 2 == 0 else tuple(reversed(seq))  # diagnostics: the first repeat only
            for v in seq:
                order += 1
                if w.script is None:
                    rec = run_saveload(w, v, r, order, args.quick, runs_dir, timeout)
                    msg = (f"save+load raw {rec['raw']['total_seconds']:.2f} s, via segtrain "
                           f"{rec['segtrain']['total_seconds']:.2f} s" if rec["ok"] else "FAILED")
                else:
                    rec = run_training(w, v, r, order, args.quick, runs_dir, args.format, timeout)
                    msg = (f"wall {rec['wall_seconds']:.1f} s, Σ epochs {rec['epoch_seconds_sum']:.1f} s, slowdown "
                           + " ".join(f"{x['slowdown']:.2f}" for x in rec["windows"])
                           + f", RSS {rec['windows'][0]['rss_mb_max']:.0f} → {rec['windows'][-1]['rss_mb_max']:.0f} MB"
                           if rec["ok"] else "FAILED: " + rec.get("error", "")[-600:])
                print(f"  {v:<19} r{r + 1}: {msg}", flush=True)
                wr["runs"].append(rec)
        w_eff = Workload(**{**w.__dict__, "variants": variants})
        if w.script is None:
            wr.update(kind="saveload", params=w.extra["quick_params" if args.quick else "params"])
            wr["summary"] = summarise_saveload(w_eff, wr["runs"])
            wr["targets"] = targets_saveload(w, wr["summary"], args.quick)
            print(saveload_table(variants, wr["summary"]), flush=True)
        else:
            wr.update(kind="training", script=os.path.relpath(WORKLOADS_DIR / w.script, ROOT), format=args.format,
                      epochs=w.quick_epochs if args.quick else w.epochs,
                      segment=w.quick_segment if args.quick else w.segment)
            wr["summary"] = summarise_training(w_eff, wr["runs"])
            wr["targets"] = targets_training(w_eff, wr["summary"], args.quick)
            print(training_table(variants, wr["summary"]), flush=True)
            print(segmenting_table(variants, wr["summary"]), flush=True)
        result["workloads"][name] = wr
        result["targets"] += wr["targets"]
        for t in wr["targets"]:
            print(f"  target {t['target']}: {_f(t['value'], '.3f')} {t['op']} {t['threshold']}: "
                  f"{'met' if t['met'] else 'NOT met'}", flush=True)
    result["suite_seconds"] = time.perf_counter() - t_suite
    result["loadavg_end"] = list(os.getloadavg())
    result["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    result["ok"] = all(r["ok"] for wr in result["workloads"].values() for r in wr["runs"])

    out_dir.mkdir(parents=True, exist_ok=True)
    base = args.name or f"{started:%Y-%m-%d}-{machine_slug(m)}"
    (out_dir / f"{base}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out_dir / f"{base}.md").write_text(markdown(result))
    print(f"\n{headline_table(result)}\n\nWrote {out_dir / base}.md and .json ({result['suite_seconds'] / 60:.1f} min)")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

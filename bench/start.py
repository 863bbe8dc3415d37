"""How a worker begins: forked from a zygote (`--start fork`, the default) against a fresh interpreter
(`--start spawn`), side by side in one invocation (issue 26).

    .venv/bin/python bench/start.py [--pairs 5] [--out bench/results/NAME.json]

Three measurements, each run in a fresh `segtrain fit` process, interleaved so that drift spreads over them:

* mission: `tiny.py` (~0.016 s epochs), 1000 epochs in segments of 50 against one segment of 1000, fork and
  spawn: the wall ratio segmented ÷ whole;
* clean: `clean.py` (1-1.5 s epochs), 50 epochs in segments of 10 against one of 50, `--pairs` pairs with
  fork and one with spawn: the median of the pairs' wall ratios;
* cold: `clean.py` 50 / 10 with `--no-prestart` (no spare: every boundary starts its worker then): from the
  previous segment's end to the checkpoint loaded in the new worker (`start_seconds + load_seconds` of
  segments 2-5 in segments.jsonl), fork and spawn; and with the first epoch after it (which traces the train
  step, and which a worker that creates fit's variables as it loads makes shorter).

Prints a markdown table; `--out` also writes the JSON. Never asserted anywhere: these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "bench" / "workloads"


def fit(script: str, epochs: int, segment: int, start: str, runs: Path, *more: str) -> dict:
    run_dir = runs / f"{script}-{epochs}-{segment}-{start}-{'-'.join(more) or 'prestart'}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "segtrain", "fit", str(WORKLOADS / f"{script}.py"), "--epochs", str(epochs),
           "--segment", str(segment), "--run-dir", str(run_dir), "--seed", "0", "--no-progress", "-q",
           "--start", start, *more]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    segments = [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"wall": wall, "segments": segments, "starts": sorted({s.get("start") for s in segments})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="clean 50/10 pairs with fork (default 5)")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here as JSON")
    args = parser.parse_args()
    runs = Path(tempfile.mkdtemp(prefix="segtrain-bench-start-"))
    result: dict = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                             text=True, cwd=ROOT).stdout.strip(),
                    "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                    "command": " ".join(["python", "bench/start.py", *sys.argv[1:]]),
                    "load_before": os.getloadavg()[0]}
    mission = {}
    for start in ("fork", "spawn"):
        whole = fit("tiny", 1000, 1000, start, runs)
        parts = fit("tiny", 1000, 50, start, runs)
        mission[start] = {"whole": whole["wall"], "segmented": parts["wall"], "ratio": parts["wall"] / whole["wall"],
                          "starts": parts["starts"]}
    clean: dict = {"fork": [], "spawn": []}
    for i in range(args.pairs):
        for start in ("fork", "spawn") if i == 0 else ("fork",):
            whole = fit("clean", 50, 50, start, runs)
            parts = fit("clean", 50, 10, start, runs)
            clean[start].append({"whole": whole["wall"], "segmented": parts["wall"],
                                 "ratio": parts["wall"] / whole["wall"], "starts": parts["starts"]})
    cold = {}
    for start in ("fork", "spawn"):
        run = fit("clean", 50, 10, start, runs, "--no-prestart")
        later = run["segments"][1:]
        cold[start] = {"median": statistics.median(s["start_seconds"] + s["load_seconds"] for s in later),
                       "start_seconds": [round(s["start_seconds"], 3) for s in later],
                       "load_seconds": [round(s["load_seconds"], 3) for s in later],
                       "first_epoch_seconds": [round(s["first_epoch_seconds"], 3) for s in later],
                       "with_first_epoch": statistics.median(s["start_seconds"] + s["load_seconds"]
                                                             + s["first_epoch_seconds"] for s in later),
                       "starts": run["starts"]}
    shutil.rmtree(runs, ignore_errors=True)
    result.update(mission=mission, clean=clean, cold=cold, load_after=os.getloadavg()[0])
    print(render(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def render(r: dict) -> str:
    rows = []
    for start in ("fork", "spawn"):
        m = r["mission"][start]
        rows.append([f"mission: tiny, 1000 epochs, segments of 50 ÷ one segment ({start})",
                     f"{m['segmented']:.1f} / {m['whole']:.1f} s", f"**{m['ratio']:.2f}×**"])
    for start in ("fork", "spawn"):
        pairs = r["clean"][start]
        ratios = [p["ratio"] for p in pairs]
        rows.append([f"clean: 50 epochs, segments of 10 ÷ one segment ({start}, {len(pairs)} pair(s))",
                     ", ".join(f"{x:.3f}" for x in ratios), f"**{statistics.median(ratios):.3f}×** (median)"])
    for start in ("fork", "spawn"):
        c = r["cold"][start]
        rows.append([f"cold boundary, clean 50/10 --no-prestart ({start}): worker start + checkpoint load",
                     f"start {c['start_seconds']} s, load {c['load_seconds']} s", f"**{c['median']:.2f} s** (median)"])
        if "with_first_epoch" in c:  # the first epoch traces the train step: what a cold boundary costs in all
            rows.append([f"cold boundary ({start}): start + load + the first epoch",
                         f"first epoch {c['first_epoch_seconds']} s", f"**{c['with_first_epoch']:.2f} s** (median)"])
    head = (f"commit {r['commit']}, {r['machine']}, load average {r['load_before']:.2f} → {r['load_after']:.2f}; "
            f"`{r['command']}`\n\n")
    lines = ["| measurement | figures | result |", "|---|---|---|", *("| " + " | ".join(row) + " |" for row in rows)]
    return head + "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

"""What segmenting costs, as `segtrain report` says and as the wall clock says: one segment against segments.

    .venv/bin/python bench/cost.py                      # bench/workloads/clean.py, 50 epochs, segments of 10, 3 pairs
    .venv/bin/python bench/cost.py --script examples/spirals.py --epochs 36 --segment 12 --pairs 3

Each pair runs one script twice with `segtrain fit --seed 0 --no-progress -q`:
in one segment (`--segment EPOCHS`) and in segments, in alternating order (pair 1
one segment first, pair 2 segmented first, ...), each a fresh process timed from
spawn to exit, so that a noisy machine drifts over both alike. Per pair:

* the wall-time difference, segmented minus one segment: what segmenting cost;
* the segmented run's segmenting cost from `segtrain report --json`
  (`overhead_seconds`: boundaries, re-traces, each later segment's other wall
  time, epochs slowed beside the pre-started worker) and its parts, and what
  the report said before issue 15 (boundaries and re-traces alone);
* the one-segment run's own figure (its final save, which both runs pay, so the
  wall difference does not hold it), and the report's figure net of it;
* the difference corrected for the machine's pace: each run's wall time less
  its epochs at its own clean pace (the one-segment run's seconds per epoch;
  the segmented run's median clean epoch, `figures.clean_pace` over the run),
  so that other jobs that slow one run's every epoch more than the other's do
  not count as segmenting's (time lost beside the spare still does: its epochs
  are not clean);
* where the rest of the difference went: the wall time outside the segments
  (start-up, the run directory, the exit) and inside `fit` outside the epochs.

The ratios are report ÷ wall difference; medians over the pairs. Results: a
markdown and a JSON file in bench/results (or --out), with the machine, the git
commit and the exact command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from run import machine, machine_slug  # noqa: E402  (bench/run.py: the suite's machine record)

SCHEMA = "segtrain-bench-cost/1"


def _env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.pop("BENCH_QUICK", None)
    return env


def fit(script: Path, epochs: int, segment: int, run_dir: Path, log: Path) -> float:
    """One `segtrain fit` in a fresh process; its wall seconds, spawn to exit."""
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "segtrain",
        "fit",
        str(script),
        "--epochs",
        str(epochs),
        "--segment",
        str(segment),
        "--seed",
        "0",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "-q",
    ]
    t0 = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(cmd, cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"{shlex.join(cmd)} exited {code}; see {log}")
    return wall


def report(run_dir: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "segtrain", "report", str(run_dir), "--json"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def gaps(run_dir: Path, wall: float) -> dict[str, float]:
    """Wall seconds no figure of the report holds: per segment outside start, load, training and saves; outside
    the segments."""
    records = [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines() if line.strip()]
    inside = sum(r["wall_seconds"] for r in records)
    accounted = sum(
        (r.get("start_seconds") or 0)
        + (r.get("clear_seconds") or 0)
        + r["load_seconds"]
        + r["train_seconds"]
        + r["save_seconds"]
        for r in records
    )
    fit_gap = sum(r["train_seconds"] - sum(r["epoch_seconds"]) for r in records)
    return {"segments": inside - accounted, "outside": wall - inside, "fit_gap": fit_gap}


def clean_pace(run_dir: Path) -> float:
    """The run's seconds per epoch without a busy spare (`figures.clean_pace` with the whole run's clean epochs)."""
    from segtrain.telemetry.figures import run_clean_seconds

    records = [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines() if line.strip()]
    clean = run_clean_seconds((r["epoch_seconds"], r.get("spare_cpu_seconds")) for r in records)
    return statistics.median(clean)


def one_pair(args: argparse.Namespace, i: int, runs: Path) -> dict[str, Any]:
    order = ("one", "segmented") if i % 2 == 0 else ("segmented", "one")
    walls: dict[str, float] = {}
    for kind in order:
        segment = args.epochs if kind == "one" else args.segment
        walls[kind] = fit(
            args.script, args.epochs, segment, runs / f"pair{i + 1}-{kind}", runs / f"pair{i + 1}-{kind}.log"
        )
        print(f"  pair {i + 1}: {kind:9s} {walls[kind]:6.1f} s", flush=True)
    seg, one = report(runs / f"pair{i + 1}-segmented"), report(runs / f"pair{i + 1}-one")
    diff = walls["segmented"] - walls["one"]
    paces = {kind: clean_pace(runs / f"pair{i + 1}-{kind}") for kind in walls}
    corrected = (walls["segmented"] - args.epochs * paces["segmented"]) - (walls["one"] - args.epochs * paces["one"])
    net = seg["overhead_seconds"] - one["overhead_seconds"]
    before = seg["overhead_boundary_seconds"] + seg["overhead_retrace_seconds"] - one["overhead_seconds"]
    return {
        "order": list(order),
        "wall_one": walls["one"],
        "wall_segmented": walls["segmented"],
        "wall_difference": diff,
        "report": {
            k: seg[k]
            for k in (
                "overhead_seconds",
                "boundary_overhead",
                "overhead_boundary_seconds",
                "overhead_retrace_seconds",
                "overhead_other_seconds",
                "overhead_spare_seconds",
                "spare_busy_epochs",
                "prestart_cpu_seconds",
                "train_seconds",
            )
        },
        "report_one_segment": one["overhead_seconds"],  # its final save: both runs pay it
        "report_net": net,
        "report_net_before": before,  # boundaries and re-traces only, as the report said before
        "ratio": net / diff if diff > 0 else None,
        "ratio_before": before / diff if diff > 0 else None,
        "pace_one": paces["one"],
        "pace_segmented": paces["segmented"],
        "wall_difference_pace_corrected": corrected,
        "ratio_pace_corrected": net / corrected if corrected > 0 else None,
        "ratio_before_pace_corrected": before / corrected if corrected > 0 else None,
        "seconds_per_epoch_one": one["segments"][0]["seconds_per_epoch"],
        "seconds_per_epoch_segmented": [s["seconds_per_epoch"] for s in seg["segments"]],
        "gaps_segmented": gaps(runs / f"pair{i + 1}-segmented", walls["segmented"]),
        "gaps_one": gaps(runs / f"pair{i + 1}-one", walls["one"]),
    }


def summarize(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the pairs; the headline is the ratio of the medians (report ÷ difference), which a pair whose
    difference noise drove near zero or below does not throw off as a median of ratios does."""
    summary = {
        "pairs": len(pairs),
        "wall_one": _median(pairs, "wall_one"),
        "wall_segmented": _median(pairs, "wall_segmented"),
        "wall_difference": _median(pairs, "wall_difference"),
        "wall_difference_pace_corrected": _median(pairs, "wall_difference_pace_corrected"),
        "report": _median(pairs, "report", "overhead_seconds"),
        "report_net": _median(pairs, "report_net"),
        "report_net_before": _median(pairs, "report_net_before"),
        "ratio": _median(pairs, "ratio"),
        "ratio_pace_corrected": _median(pairs, "ratio_pace_corrected"),
        "prestart_cpu_seconds": _median(pairs, "report", "prestart_cpu_seconds"),
        "gap_segments": _median(pairs, "gaps_segmented", "segments"),
        "gap_segments_one": _median(pairs, "gaps_one", "segments"),
        "gap_outside": _median(pairs, "gaps_segmented", "outside"),
        "gap_outside_one": _median(pairs, "gaps_one", "outside"),
        "fit_gap": _median(pairs, "gaps_segmented", "fit_gap"),
        "fit_gap_one": _median(pairs, "gaps_one", "fit_gap"),
    }
    for suffix, diff in (("", "wall_difference"), ("_pace_corrected", "wall_difference_pace_corrected")):
        ok = summary[diff] is not None and summary[diff] > 0
        summary["ratio_of_medians" + suffix] = summary["report_net"] / summary[diff] if ok else None
        summary["ratio_of_medians_before" + suffix] = summary["report_net_before"] / summary[diff] if ok else None
    return summary


def _median(pairs: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for p in pairs:
        v: Any = p
        for key in path:
            v = v[key]
        if v is not None:
            values.append(v)
    return statistics.median(values) if values else None


def markdown(result: dict[str, Any]) -> str:
    m, a, pairs = result["machine"], result["args"], result["pairs"]
    lines = [
        f"# Segmenting cost: `segtrain report` against the wall clock ({result['started'][:10]})",
        "",
        f"`{result['command']}` at {m['git_commit'][:7] if m['git_commit'] else '?'}"
        + (f" with uncommitted changes ({len(m['git_dirty_paths'])} files)" if m["git_dirty_paths"] else "")
        + f"; {m['cpu_model']}, {m['cpus']} CPUs, TF {m['tensorflow']}, Keras {m['keras']}; load average "
        f"{result['loadavg'][0]:.2f} → {result['loadavg'][1]:.2f}.",
        "",
        f"`{a['script']}`, {a['epochs']} epochs: one segment against segments of {a['segment']}, "
        f"{len(pairs)} alternating pairs.",
        "",
        "| pair | order | wall 1 seg s | wall segmented s | difference s | clean s/epoch 1 seg / segmented | "
        "difference at equal pace s | report s (boundaries + re-traces + other + beside spare) | report net of the final "
        "save s | report ÷ difference | report ÷ difference at equal pace | before (boundaries + re-traces) ÷ "
        "difference at equal pace | prestart CPU-s | busy epochs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, p in enumerate(pairs, 1):
        r = p["report"]
        lines.append(
            f"| {i} | {' → '.join(p['order'])} | {p['wall_one']:.1f} | {p['wall_segmented']:.1f} | "
            f"{p['wall_difference']:.1f} | {p['pace_one']:.3f} / {p['pace_segmented']:.3f} | "
            f"{p['wall_difference_pace_corrected']:.1f} | {r['overhead_seconds']:.1f} "
            f"({r['overhead_boundary_seconds']:.1f} + {r['overhead_retrace_seconds']:.1f} + "
            f"{r['overhead_other_seconds']:.1f} + {r['overhead_spare_seconds']:.1f}) | {p['report_net']:.1f} | "
            f"{_fmt(p['ratio'])} | "
            f"{_fmt(p['ratio_pace_corrected'])} | {_fmt(p['ratio_before_pace_corrected'])} | "
            f"{r['prestart_cpu_seconds']:.1f} | {r['spare_busy_epochs']} |"
        )
    s = result["summary"]
    lines += [
        f"| **median** | | {s['wall_one']:.1f} | {s['wall_segmented']:.1f} | {s['wall_difference']:.1f} | | "
        f"{s['wall_difference_pace_corrected']:.1f} | {s['report']:.1f} | {s['report_net']:.1f} | "
        f"{_fmt(s['ratio'])} | {_fmt(s['ratio_pace_corrected'])} | | {s['prestart_cpu_seconds']:.1f} | |",
        "",
        f"**Median report ÷ median difference: {_fmt(s['ratio_of_medians'])}** (at equal pace: "
        f"{_fmt(s['ratio_of_medians_pace_corrected'])}); before, boundaries and re-traces alone: "
        f"{_fmt(s['ratio_of_medians_before'])} (at equal pace: {_fmt(s['ratio_of_medians_before_pace_corrected'])}).",
        "",
        "What the report does not hold (medians, s): outside the segments (start-up, the run directory, exit) "
        f"{s['gap_outside']:.2f} segmented, {s['gap_outside_one']:.2f} in one segment; inside `fit` outside the "
        f"epochs {s['fit_gap']:.2f} and {s['fit_gap_one']:.2f}. (Inside the segments but outside start, load, "
        f"training and saves, which the report holds as `other`: {s['gap_segments']:.2f} and "
        f"{s['gap_segments_one']:.2f}.)",
        "",
    ]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", type=Path, default=BENCH / "workloads" / "clean.py")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--segment", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--name", default=None)
    parser.add_argument("--runs-dir", type=Path, default=None)
    parser.add_argument("--render", type=Path, default=None, help="rewrite the markdown of a result JSON, and stop")
    args = parser.parse_args()
    if args.render is not None:
        result = json.loads(args.render.read_text())
        result["summary"] = summarize(result["pairs"])
        args.render.write_text(json.dumps(result, indent=2) + "\n")
        args.render.with_suffix(".md").write_text(markdown(result))
        print(markdown(result))
        return
    args.script = args.script.resolve()
    started = dt.datetime.now()
    runs = args.runs_dir or BENCH / "runs" / f"cost-{started:%Y%m%d-%H%M%S}"
    runs.mkdir(parents=True, exist_ok=True)
    m = machine()
    load_before = os.getloadavg()[0]
    print(f"segtrain cost: {args.script.name}, {args.epochs} epochs, segments of {args.segment}, {args.pairs} pairs")
    pairs = [one_pair(args, i, runs) for i in range(args.pairs)]
    summary = summarize(pairs)
    argv = ["python", "bench/cost.py", *sys.argv[1:]]
    result = {
        "schema": SCHEMA,
        "command": shlex.join(argv),
        "started": started.isoformat(timespec="seconds"),
        "machine": m,
        "loadavg": [load_before, os.getloadavg()[0]],
        "args": {"script": os.path.relpath(args.script, ROOT), "epochs": args.epochs, "segment": args.segment},
        "pairs": pairs,
        "summary": summary,
    }
    name = args.name or f"{started:%Y-%m-%d}-{machine_slug(m)}-cost"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.out / f"{name}.md").write_text(text)
    print(text)
    print(f"wrote {args.out / name}.md and .json; runs and logs in {runs}")


if __name__ == "__main__":
    main()

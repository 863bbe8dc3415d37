"""An unmodified search script, with `python` and with `segtrain run` (issue 27): memory and time per trial.

    .venv/bin/python bench/search_script.py                          # Optuna, 30 trials x 2 epochs
    .venv/bin/python bench/search_script.py --library kerastuner     # KerasTuner, the same
    .venv/bin/python bench/search_script.py --quick                  # 3 trials x 1 epoch: checks that it runs

One invocation runs the same script (bench/workloads/optuna_script.py or kerastuner_script.py: the sweep
benchmark's model and space in Optuna's or KerasTuner's own shape, seeded random search) twice, side by side,
each in a fresh process:

* `python`: `python SCRIPT --trials N`, every trial in that one process;
* `segtrain-run`: `segtrain run SCRIPT --seed 0 --no-progress -- --trials N`, the search's loop in the
  driver, every trial in workers of its own (one segment per trial).

Per trial: the peak RSS of the process that trained it (`python`: ru_maxrss after the trial, from the
script's callback; `segtrain-run`: the trial's worker, `peak_rss_mb` in its run's segments.jsonl). Per
peer: wall and CPU seconds (the process and its children). The target (issue 27): segtrain's per-trial peak
RSS flat, the last trial's within 3 % of the first's, where the plain run's grows.

Results: `<date>-<machine>-search-script.md` and `.json` in bench/results (`--quick`: bench/runs/quick),
with the command and the commit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCRIPTS = {
    "optuna": BENCH / "workloads" / "optuna_script.py",
    "kerastuner": BENCH / "workloads" / "kerastuner_script.py",
}
RSS_FLAT = 0.03  # segtrain-run: the last trial's peak RSS within 3 % of the first's


def _bench_run() -> Any:
    spec = importlib.util.spec_from_file_location("segtrain_bench_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_peer(peer: str, library: str, trials: int, epochs: int, runs: Path) -> dict[str, Any]:
    folder = runs / peer
    folder.mkdir(parents=True)
    out = folder / "trials.jsonl"
    script_args = ["--trials", str(trials), "--epochs", str(epochs)]
    if library == "kerastuner":
        script_args += ["--directory", str(folder / "tuner")]
    script = SCRIPTS[library]
    if peer == "python":
        cmd = [sys.executable, str(script), *script_args]
    else:
        cmd = [sys.executable, "-m", "segtrain", "run", str(script), "--seed", "0", "--segment", str(epochs),
               "--run-dir", str(folder / "run"), "--no-progress", "--", *script_args]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, BENCH_TRIALS=str(out)))
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    (folder / "output.log").write_text(proc.stdout + proc.stderr)
    record: dict[str, Any] = {"peer": peer, "command": shlex.join(["python", *cmd[1:]]), "exit_code": proc.returncode,
                              "wall_seconds": wall, "cpu_seconds": cpu, "stdout": proc.stdout}
    if proc.returncode != 0:
        record["error"] = proc.stderr[-2000:]
        return record
    recorded = [json.loads(line) for line in out.read_text().splitlines()]  # the script's callback, each trial
    if library == "kerastuner":  # its record is the trial's own process's (its fit's callback), not the driver's
        record["params"] = [json.loads(p.read_text())["hyperparameters"]["values"]
                            for p in sorted((folder / "tuner" / "bench").glob("trial_*/trial.json"))]
        record["process_rss_mb"] = []
    else:
        record["params"] = [r["params"] for r in recorded]
        record["process_rss_mb"] = [r["rss_mb"] for r in recorded]  # segtrain-run: the driver's, which trains nothing
    if peer == "python":
        record["peak_rss_mb"] = [r["peak_rss_mb"] for r in recorded]
    else:
        peaks = []
        for trial in sorted((folder / "run" / "trials").iterdir()):
            segments = [json.loads(line) for line in (trial / "segments.jsonl").read_text().splitlines()]
            peaks.append(max(s["peak_rss_mb"] for s in segments))
        record["peak_rss_mb"] = peaks
    return record


def summarise(record: dict[str, Any]) -> dict[str, Any]:
    peaks = record.get("peak_rss_mb") or []
    if not peaks:
        return {"ok": False}
    return {"ok": True, "first": peaks[0], "last": peaks[-1], "growth": peaks[-1] / peaks[0] - 1,
            "per_trial": (peaks[-1] - peaks[0]) / max(1, len(peaks) - 1)}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# An unmodified {result['library']} script: `python` and `segtrain run` ({result['started'][:10]})", "",
             f"Command: `{result['command']}` at commit {result['commit_short']}; {result['machine']['cpu_model']}, "
             f"{result['machine']['cpus']} CPUs; {result['trials']} trials x {result['epochs']} epochs.", "",
             "| peer | wall s | CPU s | per-trial peak RSS first → last MB | growth | MB/trial |",
             "|---|---|---|---|---|---|"]
    for r in result["runs"]:
        s = result["summary"][r["peer"]]
        if s["ok"]:
            lines.append(f"| {r['peer']} | {r['wall_seconds']:.1f} | {r['cpu_seconds']:.1f} | {s['first']:.0f} → "
                         f"{s['last']:.0f} | {s['growth']:+.1%} | {s['per_trial']:+.2f} |")
        else:
            lines.append(f"| {r['peer']} | failed (exit {r['exit_code']}) | | | | |")
    driver = result["runs"][1].get("process_rss_mb")
    lines += ["", f"Same params drawn, trial by trial: {result['same_params']}." + (
              f" segtrain-run's driver (the search's loop, no training): RSS {driver[0]:.0f} → {driver[-1]:.0f} MB."
              if driver else ""),
              f"Wall ratio segtrain-run / python: {result.get('wall_ratio', float('nan')):.2f}.", ""]
    for t in result["targets"]:
        met = "met" if t["met"] else "NOT met"
        lines.append(f"- target {t['target']}: {t['value']:+.3f} ≤ {t['threshold']}: {met}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--library", choices=sorted(SCRIPTS), default="optuna")
    parser.add_argument("--quick", action="store_true", help="3 trials x 1 epoch, results in bench/runs/quick")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    trials = args.trials or (3 if args.quick else 30)
    epochs = args.epochs or (1 if args.quick else 2)
    bench_run = _bench_run()
    started = dt.datetime.now().astimezone()
    runs = BENCH / "runs" / f"search-script-{started:%Y%m%d-%H%M%S}"
    result: dict[str, Any] = {
        "schema": "segtrain-bench-search-script/1", "command": shlex.join(["python", "bench/search_script.py",
                                                                            *(argv or sys.argv[1:])]),
        "started": started.isoformat(timespec="seconds"), "machine": bench_run.machine(),
        "commit_short": bench_run._git("rev-parse", "--short", "HEAD"), "trials": trials, "epochs": epochs,
        "library": args.library,
        "runs": [run_peer(peer, args.library, trials, epochs, runs) for peer in ("python", "segtrain-run")],
    }
    result["summary"] = {r["peer"]: summarise(r) for r in result["runs"]}
    plain, ours = result["runs"]
    result["same_params"] = "yes" if plain.get("params") and plain.get("params") == ours.get("params") else "no"
    if plain["exit_code"] == 0 and ours["exit_code"] == 0:
        result["wall_ratio"] = ours["wall_seconds"] / plain["wall_seconds"]
    s = result["summary"]["segtrain-run"]
    result["targets"] = [] if not s["ok"] or args.quick else [
        {"target": "segtrain-run per-trial peak RSS growth, last / first - 1", "value": s["growth"],
         "threshold": RSS_FLAT, "met": s["growth"] <= RSS_FLAT}]
    out = (args.out or (BENCH / "runs" / "quick" if args.quick else BENCH / "results")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.library == "optuna" else f"-{args.library}"
    base = out / f"{started:%Y-%m-%d}-{bench_run.machine_slug(result['machine'])}-search-script{suffix}"
    Path(f"{base}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    Path(f"{base}.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if all(r["exit_code"] == 0 for r in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())

"""What many hosts cost against one: the same data-parallel run in one process and in two, side by side.

    .venv/bin/python bench/hosts.py                     # bench/workloads/clean.py, 12 epochs, segments of 4, 2 rounds
    .venv/bin/python bench/hosts.py --epochs 20 --segment 5 --rounds 3

Four runs of one script per round, in a rotating order (so that a noisy machine drifts over all alike), each
`segtrain fit --seed 0 --distribute data-parallel` on JAX over two CPU devices:

* `one process, one segment`: `SEGTRAIN_CPU_DEVICES=2`, `--segment EPOCHS` — the reference;
* `one process, segments`: the same in segments of `--segment`;
* `two processes, one segment`: two `segtrain fit` on 127.0.0.1 (`--coordinator`), one CPU device each: the
  cost of training across processes (gloo's all-reduce, segtrain's all-gather at every batch's end);
* `two processes, segments`: and of joining JAX's runtime afresh every segment, without the pre-started
  worker's warm-up.

Per run: wall seconds from spawn to the last process's exit, the median epoch (process 0's epochs.jsonl), the
boundaries' seconds (segments.jsonl); then each run's wall ÷ the reference's, medians over the rounds. The
final weights of all four are checked equal (bitwise). Results: markdown and JSON in bench/results (or
--out), with the machine, the git commit and the exact command. On CPUs only: on GPUs across hosts the
per-batch all-gather is small beside the gradients' all-reduce, and that is not measured here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from run import machine, machine_slug  # noqa: E402  (bench/run.py: the suite's machine record)

SCHEMA = "segtrain-bench-hosts/1"
MODES = ("one process, one segment", "one process, segments", "two processes, one segment", "two processes, segments")
COMPARE = """
import sys, numpy as np, segtrain
first, *rest = (segtrain.load_model(d) for d in sys.argv[1:])
print(all(np.array_equal(a.numpy(), b.numpy()) for m in rest for a, b in zip(first.weights, m.weights, strict=True)))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(mode: str, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One run of `mode`, timed from spawn to the last process's exit, and what its records say."""
    two, segmented = mode.startswith("two"), mode.endswith("segments")
    cmd = [sys.executable, "-m", "segtrain", "fit", args.script, "--epochs", str(args.epochs), "--segment"]
    cmd += [str(args.segment if segmented else args.epochs), "--run-dir", str(run_dir), "--seed", "0"]
    cmd += ["--distribute", "data-parallel", "--no-progress", "-q"]
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(BENCH / "workloads"))
    if args.quick:
        env["BENCH_QUICK"] = "1"
    if two:
        port = _free_port()
        hosts = [["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)] for i in (0, 1)]
    else:
        env["SEGTRAIN_CPU_DEVICES"] = "2"
        hosts = [[]]
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*cmd, *more], env=env, stderr=subprocess.PIPE, text=True) for more in hosts]
    errors = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - t0
    if any(p.returncode for p in procs):
        raise SystemExit(f"{mode} failed: " + " | ".join(e[-2000:] for e in errors))
    epochs = [json.loads(line) for line in (run_dir / "epochs.jsonl").read_text().splitlines()]
    segments = [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]
    return {
        "wall_seconds": wall,
        "epoch_seconds": statistics.median(e["seconds"] for e in epochs[1:] or epochs),
        "boundary_seconds": sum(s["boundary_seconds"] for s in segments[1:]),
        "segments": len(segments),
        "replicas": sorted({s["replicas"] for s in segments}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", default=str(BENCH / "workloads" / "clean.py"))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--segment", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="the workloads' BENCH_QUICK size (for tests)")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="segtrain-bench-hosts-") as tmp:
        for r in range(args.rounds):
            order = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
            last: dict[str, Path] = {}
            for mode in order:
                last[mode] = Path(tmp) / f"round{r}-{MODES.index(mode)}"
                rows[mode].append(_run(mode, last[mode], args))
            same = subprocess.run(
                [sys.executable, "-c", COMPARE, *map(str, last.values())],
                capture_output=True,
                text=True,
                env=dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(BENCH / "workloads")),
            )
            if same.stdout.strip() != "True":
                raise SystemExit(f"the four runs' final weights differ: {same.stdout}{same.stderr[-2000:]}")
    reference = [row["wall_seconds"] for row in rows[MODES[0]]]
    summary = {
        mode: {
            "wall_seconds": statistics.median(row["wall_seconds"] for row in runs),
            "wall_ratio": statistics.median(r["wall_seconds"] / ref for r, ref in zip(runs, reference, strict=True)),
            "epoch_seconds": statistics.median(row["epoch_seconds"] for row in runs),
            "boundary_seconds": statistics.median(row["boundary_seconds"] for row in runs),
            "segments": runs[0]["segments"],
            "replicas": runs[0]["replicas"],
        }
        for mode, runs in rows.items()
    }
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    lines = [
        f"# Many hosts against one ({dt.date.today()}, commit {commit.strip()})",
        "",
        f"`{command}`: {args.rounds} rounds, {args.epochs} epochs, segments of {args.segment}; final weights "
        "of all four equal, bitwise.",
        "",
        "| run | wall s | wall ÷ one process, one segment | s/epoch | boundaries s | segments | replicas |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for mode, s in summary.items():
        lines.append(
            f"| {mode} | {s['wall_seconds']:.1f} | {s['wall_ratio']:.2f} | {s['epoch_seconds']:.3f} | "
            f"{s['boundary_seconds']:.1f} | {s['segments']} | {s['replicas']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    here = machine()
    stem = args.out / f"hosts-{machine_slug(here)}-{dt.date.today()}"
    stem.with_suffix(".md").write_text(text)
    record = {"schema": SCHEMA, "command": command, "commit": commit.strip(), "machine": here, "rows": rows}
    stem.with_suffix(".json").write_text(json.dumps({**record, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()

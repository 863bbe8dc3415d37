"""What a concurrent backend import, or other work, costs a training process, at normal and lowest CPU priority.

    python bench/import_contention.py [--epochs 24] [--repeats 4] [--every 2] [--modes nice0,nice19,idle]
                                      [--out RESULT.md]

The question behind `segtrain.backend_import`: a pre-started worker imports
TensorFlow (~4 CPU-seconds) while the current segment trains on the same cores.
This trains the clean workload with `bench/naive.py` (segtrain's data pipeline,
one fit) while a competitor runs again and again beside it, `--every` seconds
after the last one ended: none (`none`, always run); a fresh interpreter that
imports the backend, at nice 0 (as any process would), at nice 19, or under
SCHED_IDLE; or a process that spends as many CPU seconds on one core: spinning
(`spin` at nice 0, `spin19` at nice 19), copying 128 MB again and again
(`copy19`), or allocating and touching 64 MB afresh each time (`alloc19`). The
modes run interleaved (reversed on every other repeat). It prints, per mode, the
sum of the epochs' seconds (each repeat, and the median), its ratio to `none`
(also paired: the median of each repeat's own ratio, which cancels the machine's
slow drifts), and the epoch seconds lost per competitor (one at lower priority
waits for idle CPU, so fewer of them fit beside one fit), as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from run import machine  # bench/run.py, beside this file

BENCH = Path(__file__).resolve().parent
def _nice(value: int):
    return lambda: os.nice(value)


def _sched_idle() -> None:
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


IMPORT = [sys.executable, "-c", "import tensorflow"]
# As many CPU-seconds as the import (~4) in one busy thread, with no memory or file traffic: what any process busy
# on one core costs the fit.
SPIN = [sys.executable, "-c", "import time\nend = time.process_time() + 4\nwhile time.process_time() < end: pass"]
# The same CPU-seconds spent on memory: copying 128 MB (beyond any cache: memory bandwidth), or allocating and
# touching 64 MB afresh each time (page faults, as a new process' allocations make).
COPY = [sys.executable, "-c", "import numpy as np, time\na = np.ones(16 << 20); b = np.empty_like(a)\n"
        "end = time.process_time() + 4\nwhile time.process_time() < end: np.copyto(b, a)"]
ALLOC = [sys.executable, "-c", "import numpy as np, time\nend = time.process_time() + 4\n"
         "while time.process_time() < end: np.ones(8 << 20).sum()"]
MODES: dict[str, tuple[list[str], Callable[[], None]] | None] = {
    "none": None,
    "nice0": (IMPORT, _nice(0)),
    "nice19": (IMPORT, _nice(19)),
    "idle": (IMPORT, _sched_idle),
    "spin": (SPIN, _nice(0)),
    "spin19": (SPIN, _nice(19)),
    "copy19": (COPY, _nice(19)),
    "alloc19": (ALLOC, _nice(19)),
}


def train_while_importing(competitor: tuple[list[str], Callable[[], None]] | None, epochs: int, every: float,
                          out: Path, quick: bool) -> tuple[float, list[float]]:
    """Σ epoch seconds of one naive fit, and the wall seconds of each competitor that ran beside it."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", BENCH_QUICK="1" if quick else "0")
    fit = subprocess.Popen([sys.executable, str(BENCH / "naive.py"), "clean.py", "--epochs", str(epochs),
                            "--pipeline", "segtrain", "--out", str(out)],
                           cwd=BENCH / "workloads", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    imports = []
    while fit.poll() is None:
        time.sleep(every)
        if competitor is None or fit.poll() is not None:
            continue
        command, lower = competitor
        t0 = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=lower)
        imports.append(time.perf_counter() - t0)
    if fit.wait() != 0:
        raise SystemExit(f"bench/naive.py failed (exit {fit.returncode})")
    return sum(e["seconds"] for e in json.loads(out.read_text())["epochs"]), imports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between one competitor's end and the next")
    parser.add_argument("--modes", default="nice0,nice19,idle",  # the import's question; the others on request
                        help=f"a comma-separated subset of {', '.join(MODES)}")
    parser.add_argument("--quick", action="store_true", help="a tiny model: a smoke test, numbers mean nothing")
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args()
    modes = ["none", *(m for m in args.modes.split(",") if m != "none")]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes {sorted(unknown)}; choose from {', '.join(MODES)}")
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    imports: dict[str, list[float]] = {mode: [] for mode in modes}  # every import's wall seconds
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            order = modes if repeat % 2 == 0 else modes[::-1]
            for mode in order:
                s, walls = train_while_importing(MODES[mode], args.epochs, args.every, Path(tmp) / "fit.json",
                                                 args.quick)
                seconds[mode].append(s)
                imports[mode].extend(walls)
                print(f"repeat {repeat + 1}, {mode}: {s:.1f} s of epochs, {len(walls)} competitors", file=sys.stderr)
    base = statistics.median(seconds["none"])
    m = machine()
    lines = [
        f"Command: `python bench/import_contention.py --epochs {args.epochs} --repeats {args.repeats} "
        f"--every {args.every:g} --modes {','.join(modes)}{' --quick' if args.quick else ''}`  ",
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['ram_gb']} GB RAM, {m['hypervisor'] or 'no'} hypervisor; "
        f"TensorFlow {m['tensorflow']}, Python {m['python']}; segtrain at {(m['git_commit'] or '?')[:10]}",
        "",
        "| beside the fit | Σ epochs s (each repeat) | median | × none | × none, paired | competitors per fit | "
        "epoch seconds lost per competitor | competitor wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode in modes:
        med = statistics.median(seconds[mode])
        each = ", ".join(f"{s:.1f}" for s in seconds[mode])
        per_fit = len(imports[mode]) / args.repeats
        lost = f"{(med - base) / per_fit:.2f}" if per_fit else "–"
        wall = f"{statistics.median(imports[mode]):.1f}" if imports[mode] else "–"
        paired = statistics.median(s / n for s, n in zip(seconds[mode], seconds["none"]))
        lines.append(f"| {mode} | {each} | {med:.1f} | {med / base:.3f} | {paired:.3f} | {per_fit:.1f} | {lost} | "
                     f"{wall} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()

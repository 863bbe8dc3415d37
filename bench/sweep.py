"""The sweep benchmark (issue 13): `segtrain sweep` against KerasTuner and an in-process Optuna loop.

    .venv/bin/python bench/sweep.py --workload growth     # 40 short trials: memory and time per trial
    .venv/bin/python bench/sweep.py --workload overhead   # 10 trials of 13-18 s: segtrain's cost per trial
    .venv/bin/python bench/sweep.py --quick               # 3 trials x 1 epoch: checks that it runs

One invocation runs three peers side by side, each in its own fresh process,
with the same model, data and search space (bench/workloads/sweep_mlp.py), the
same epochs and number of trials, random sampling and a fixed seed:

* `segtrain`: `python -m segtrain sweep SCRIPT --sampler random --pruner none --seed S`
  (process isolation, the default: every trial in fresh workers; one segment per trial
  unless --segment says otherwise);
* `kerastuner`: KerasTuner's `RandomSearch` in one process (it calls
  `keras.backend.clear_session()` and `gc.collect()` before each build);
* `optuna`: an Optuna study in one process, `RandomSampler(seed=S)`, an objective that calls
  `keras.backend.clear_session()` first, `study.optimize(..., gc_after_trial=True)`.

segtrain seeds its sampler with S on a new study, so `optuna` and `segtrain`
train the very same params in the same order; KerasTuner draws its own
(the same distributions). Every trial is seeded with S (`keras.utils.set_random_seed`,
TF op determinism), as `segtrain --seed S` does.

Per trial and peer: RSS of the process that trained it at each epoch's end
(/proc/self/statm: segtrain's epochs.jsonl `rss_mb`, a Keras callback in the
peers), its ru_maxrss (segtrain: the worker's, `segtrain report --json`; the
peers: the process's so far), the seconds of its epochs (`on_epoch_begin` to
`on_epoch_end`: process start-up is not in them) and the trial's wall time; per
peer the total wall time (spawn to exit) and CPU seconds. For segtrain, where
each trial's time goes, from its run directory: segments.jsonl
(start/load/save/train seconds), epochs.jsonl and the manifests' timestamps.

Results: `<date>-<machine>-sweep-<workload>.md` and `.json` in bench/results
(`--quick`: bench/runs/quick), with the command, the commit and the machine
(bench/run.py's helpers). Run and sweep directories go to bench/runs/sweep-<timestamp>/
(checkpoints deleted afterwards, the logs kept).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import importlib.util  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCRIPT = BENCH / "workloads" / "sweep_mlp.py"
SCHEMA = "segtrain-bench-sweep/1"
PEERS = ("optuna", "segtrain", "segtrain-spawn", "kerastuner")  # the order they run in
BASELINE = "optuna"

WORKLOADS = {
    "growth": {"trials": 40, "epochs": 2, "title": "40 short trials: memory and time per trial"},
    "overhead": {"trials": 10, "epochs": 60, "title": "10 trials of 13-18 s: segtrain's cost per trial"},
}
QUICK = {"trials": 3, "epochs": 1}

# Targets of issue 13.
RSS_FLAT = 0.03  # segtrain: the last trial's RSS within 3 % of the first's
TIME_FLAT = 1.05  # segtrain: training seconds, mean of the last 5 trials / first 5
OVERHEAD_WALL = 1.10  # segtrain total wall / the in-process Optuna loop's


def _bench_run() -> Any:
    """bench/run.py as a module (its machine and process helpers)."""
    spec = importlib.util.spec_from_file_location("segtrain_bench_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# -- the in-process peers (each runs as `bench/sweep.py --peer NAME`, in a process of its own) --------------

_CURRENT: dict[str, Any] | None = None  # the trial being trained; module-level: KerasTuner deep-copies callbacks


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux; MB as segtrain's


def _import_script(path: Path) -> Any:
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"bench_sweep_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _recorder() -> Any:
    """A Keras callback that records each epoch's seconds and RSS into the current trial."""
    import keras

    class Recorder(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            _CURRENT["fit_begin"] = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            _CURRENT["_epoch_t0"] = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - _CURRENT.pop("_epoch_t0")
            _CURRENT["epochs"].append({"epoch": epoch, "seconds": seconds, "rss_mb": _rss_mb()})

        def on_train_end(self, logs=None):
            _CURRENT["fit_seconds"] = time.perf_counter() - _CURRENT["fit_begin"]

    return Recorder()


def _begin_trial(number: int) -> dict[str, Any]:
    global _CURRENT
    _CURRENT = {"number": number, "begin": time.time(), "_t0": time.perf_counter(), "epochs": []}
    return _CURRENT


def _end_trial(trial: dict[str, Any], params: dict[str, Any], value: float | None, state: str) -> None:
    trial["trial_seconds"] = time.perf_counter() - trial.pop("_t0")
    trial["end"] = time.time()
    trial.pop("fit_begin", None)
    trial.update(params=params, value=value, state=state, peak_rss_mb=_peak_rss_mb(), rss_mb_end=_rss_mb())


class _HP:
    """`search_space(trial)`'s `suggest_*` calls on KerasTuner's `HyperParameters`."""

    def __init__(self, hp: Any):
        self.hp = hp

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return self.hp.Int(name, low, high, step=step, sampling="log" if log else "linear")

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        return self.hp.Float(name, low, high, sampling="log" if log else "linear")


def peer_main(args: argparse.Namespace) -> int:
    import keras
    import tensorflow as tf

    timings: dict[str, float] = {"imports": time.perf_counter() - T0}
    tf.config.experimental.enable_op_determinism()  # as segtrain --seed does
    script = _import_script(args.script)
    (x, y), (x_val, y_val) = script.load_data()
    fit_kwargs = dict(script.fit_kwargs)
    timings["data"] = time.perf_counter() - T0
    trials: list[dict[str, Any]] = []
    search_begin = time.time()

    if args.peer == "optuna":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)

        def objective(trial: Any) -> float:
            rec = _begin_trial(trial.number)
            trials.append(rec)
            keras.backend.clear_session()
            keras.utils.set_random_seed(args.seed)
            params = script.search_space(trial)
            model = script.build_model(params)
            history = model.fit(x, y, validation_data=(x_val, y_val), epochs=args.epochs, verbose=0,
                                callbacks=[_recorder()], **fit_kwargs)
            value = min(history.history["val_loss"])
            _end_trial(rec, params, value, "COMPLETE")
            return value

        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=args.seed))
        study.optimize(objective, n_trials=args.trials, gc_after_trial=True)
        versions = {"optuna": optuna.__version__}
    elif args.peer == "kerastuner":
        import keras_tuner as kt

        def build(hp: Any) -> Any:
            keras.utils.set_random_seed(args.seed)
            params = script.search_space(_HP(hp))
            if _CURRENT is not None:  # KerasTuner also builds once before the first trial, to learn the space
                _CURRENT["params"] = params
            return script.build_model(params)

        class Timed(kt.RandomSearch):
            def on_trial_begin(self, trial: Any) -> None:
                trials.append(_begin_trial(len(trials)))
                super().on_trial_begin(trial)

            def on_trial_end(self, trial: Any) -> None:
                super().on_trial_end(trial)
                rec = trials[-1]
                done = self.oracle.get_trial(trial.trial_id)
                status = str(getattr(done.status, "value", done.status))
                _end_trial(rec, rec.get("params") or dict(trial.hyperparameters.values), done.score,
                           "COMPLETE" if status in ("COMPLETED", "COMPLETE") else status)

        tuner = Timed(hypermodel=build, objective="val_loss", max_trials=args.trials, seed=args.seed,
                      executions_per_trial=1, directory=str(args.workdir), project_name="kerastuner",
                      overwrite=True)
        tuner.search(x, y, validation_data=(x_val, y_val), epochs=args.epochs, verbose=0,
                     callbacks=[_recorder()], **fit_kwargs)
        versions = {"keras_tuner": kt.__version__}
    else:
        raise SystemExit(f"unknown peer {args.peer}")

    result = {"peer": args.peer, "timings": timings, "search_begin": search_begin, "search_end": time.time(),
              "trials": trials, "versions": {"keras": keras.__version__, "tensorflow": tf.__version__, **versions}}
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    sys.stdout.flush()
    return 0


# -- running the peers ----------------------------------------------------------------------------------------

class TreeRSS:
    """Samples the summed RSS of this process's descendants (a peer: segtrain's supervisor, zygote, worker and
    spare), and their summed PSS (/proc/PID/smaps_rollup: a page shared by n processes counts 1/n in each, so
    pages a zygote shares with the workers it forked count once)."""

    def __init__(self, every: float = 0.25):
        import threading

        self.every, self.peak_mb, self.peak_processes, self.samples = every, 0.0, 0, 0
        self.peak_pss_mb, self.last_pss_mb = 0.0, 0.0  # the last: the tree after its last trial, about
        self.peak_split: list[int] = []  # each process's RSS (MB) at the peak, largest first
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        me = os.getpid()
        while not self._stop.wait(self.every):
            parents, rss = {}, {}
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/stat") as f:
                        stat = f.read()
                    fields = stat[stat.rindex(")") + 2:].split()
                    parents[int(entry.name)] = int(fields[1])
                    rss[int(entry.name)] = int(fields[21]) * page / 1e6
                except (OSError, ValueError, IndexError):
                    continue
            tree, frontier = set(), {me}
            while frontier:
                frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - tree
                tree |= frontier
            total = sum(rss.get(pid, 0.0) for pid in tree)
            pss = sum(_pss_mb(pid) for pid in tree)
            if pss:
                self.peak_pss_mb, self.last_pss_mb = max(self.peak_pss_mb, pss), pss
            self.samples += 1
            if total > self.peak_mb:
                self.peak_mb, self.peak_processes = total, len(tree)
                self.peak_split = sorted((round(rss.get(pid, 0.0)) for pid in tree), reverse=True)


def _pss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def run_peer(peer: str, cfg: dict[str, Any], runs_dir: Path, bench_run: Any, timeout: float) -> dict[str, Any]:
    """Run one peer in a fresh process; its per-trial records, wall and CPU seconds."""
    def rel(p: Path) -> str:
        r = os.path.relpath(p, ROOT)
        return str(p) if r.startswith("..") else r

    folder = runs_dir / peer
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if peer.startswith("segtrain"):
        sweep_dir = folder / "sweep"
        cmd = [sys.executable, "-m", "segtrain", "sweep", rel(SCRIPT), "--trials", str(cfg["trials"]),
               "--epochs", str(cfg["epochs"]), "--segment", str(cfg["segment"]), "--dir", rel(sweep_dir),
               "--sampler", "random", "--pruner", "none", "--metric", "val_loss", "--seed", str(cfg["seed"]),
               "--no-progress", "--start", "spawn" if peer == "segtrain-spawn" else "fork"]
    else:
        out = folder / "peer.json"
        cmd = [sys.executable, rel(BENCH / "sweep.py"), "--peer", peer, "--trials", str(cfg["trials"]),
               "--epochs", str(cfg["epochs"]), "--seed", str(cfg["seed"]), "--script", rel(SCRIPT),
               "--workdir", rel(folder / "work"), "--out", rel(out)]
    spawned = time.time()
    with TreeRSS() as tree:
        proc = bench_run._run_process(cmd, runs_dir / "logs" / f"{peer}.log", bench_run._env(False), timeout)
    exited = time.time()
    tail = proc.pop("tail")
    record: dict[str, Any] = {"peer": peer, "command": shlex.join(["python", *cmd[1:]]), "spawned": spawned,
                              "exited": exited, "tree_peak_rss_mb": tree.peak_mb, "tree_peak_pss_mb": tree.peak_pss_mb,
                              "tree_last_pss_mb": tree.last_pss_mb,
                              "tree_peak_processes": tree.peak_processes, "tree_peak_split_mb": tree.peak_split,
                              **proc}
    if not proc["ok"]:
        record["error"] = tail
        return record
    if peer.startswith("segtrain"):
        record.update(_segtrain_trials(sweep_dir, spawned, exited))
        for ck in sweep_dir.glob("trials/*/ckpt-*"):
            shutil.rmtree(ck, ignore_errors=True)  # the numbers are in the jsonl files; free the disk
    else:
        res = json.loads(out.read_text())
        record["versions"] = res["versions"]
        record["trials"] = [_summarise_trial(t) for t in res["trials"]]
        record["phases"] = {"start_seconds": res["search_begin"] - spawned,
                            "end_seconds": exited - res["search_end"], "imports_seconds": res["timings"]["imports"],
                            "data_seconds": res["timings"]["data"] - res["timings"]["imports"]}
        shutil.rmtree(folder / "work", ignore_errors=True)
    _between_trials(record["trials"])
    record["ok"] = len(record["trials"]) == cfg["trials"] and all(t["state"] == "COMPLETE" for t in record["trials"])
    if not record["ok"]:
        record["error"] = f"{len(record['trials'])} trials recorded, states {[t['state'] for t in record['trials']]}"
    return record


def _summarise_trial(t: dict[str, Any]) -> dict[str, Any]:
    """A peer's trial as the tables use it (epoch-end RSS, Σ epoch seconds)."""
    epochs = t["epochs"]
    rss = [e["rss_mb"] for e in epochs]
    return {
        "number": t["number"], "state": t["state"], "value": t["value"], "params": t["params"],
        "begin": t["begin"], "end": t["end"], "wall_seconds": t["trial_seconds"],
        "epoch_seconds": [e["seconds"] for e in epochs], "train_seconds": sum(e["seconds"] for e in epochs),
        "fit_seconds": t.get("fit_seconds"), "rss_mb": max(rss) if rss else None,
        "rss_mb_epochs": rss, "peak_rss_mb": t["peak_rss_mb"], "rss_mb_end": t["rss_mb_end"],
        "pid": None,
    }


def _segtrain_trials(sweep_dir: Path, spawned: float, exited: float) -> dict[str, Any]:
    """Per trial: `segtrain report --json`'s row, its epochs and segments, and where its time went."""
    rep = subprocess.run([sys.executable, "-m", "segtrain", "report", str(sweep_dir), "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    report = json.loads(rep.stdout)
    sweep_created = json.loads((sweep_dir / "sweep.json").read_text())["created"]
    trials = []
    for row in sorted(report["trials"], key=lambda r: r["number"]):
        run_dir = Path(row["run_dir"])
        epochs = sorted({e["epoch"]: e for e in _read_jsonl(run_dir / "epochs.jsonl")}.values(),
                        key=lambda e: e["epoch"])
        segments = _read_jsonl(run_dir / "segments.jsonl")
        manifest = json.loads((run_dir / "manifest.json").read_text())
        rss = [e["rss_mb"] for e in epochs if e.get("rss_mb") is not None]
        seg_wall = sum(s.get("wall_seconds") or 0.0 for s in segments)
        parts = {k: sum(s.get(k) or 0.0 for s in segments)
                 for k in ("start_seconds", "load_seconds", "train_seconds", "save_seconds")}
        epoch_sum = sum(e["seconds"] for e in epochs)
        trials.append({
            "number": row["number"], "state": row["state"], "value": row["value"], "params": row["params"],
            "begin": manifest["created"], "end": manifest["updated"],
            "wall_seconds": manifest["updated"] - manifest["created"],
            "epoch_seconds": [e["seconds"] for e in epochs], "train_seconds": epoch_sum,
            "fit_seconds": parts["train_seconds"], "rss_mb": max(rss) if rss else None, "rss_mb_epochs": rss,
            "peak_rss_mb": row["peak_rss_mb"], "report_seconds": row["seconds"],
            "pid": [s.get("pid") for s in segments],
            "prestarted": [s.get("prestarted") for s in segments],
            "segments": len(segments),
            # where the trial's time went (sums over its segments)
            "split": {
                "start_seconds": parts["start_seconds"],  # a fresh worker's start, or the wait for the spare
                "setup_seconds": seg_wall - sum(parts.values()),  # after the assignment: the run's data, messages
                "load_seconds": parts["load_seconds"],  # build the model (or load a checkpoint)
                "first_epoch_seconds": epochs[0]["seconds"] if epochs else 0.0,  # includes the trace
                "other_epochs_seconds": epoch_sum - (epochs[0]["seconds"] if epochs else 0.0),
                "fit_gap_seconds": parts["train_seconds"] - epoch_sum,  # in fit outside epochs
                "save_seconds": parts["save_seconds"],
                "records_seconds": (manifest["updated"] - manifest["created"]) - seg_wall,  # open_run, history
            },
        })
    first_begin = trials[0]["begin"] if trials else exited
    last_end = trials[-1]["end"] if trials else exited
    phases = {"start_seconds": first_begin - spawned,  # CLI import, the script (and its backend), the study
              "cli_seconds": sweep_created - spawned,  # of which: until sweep.json was written
              "end_seconds": exited - last_end}  # telling the last trial, closing the spare worker, the report
    return {"trials": trials, "phases": phases, "report_best": report.get("best")}


def _between_trials(trials: list[dict[str, Any]]) -> None:
    """Each trial's gap since the previous one ended (the search's own bookkeeping: sample, tell, gc, claim).

    A segtrain trial asked for ahead had its run opened while the one before trained: its turn, and so its
    wall and its supervisor's share, begin where that one ended."""
    for prev, t in itertools.pairwise(trials):
        if t["begin"] < prev["end"]:
            ahead = prev["end"] - t["begin"]
            t["begin"], t["wall_seconds"] = prev["end"], t["wall_seconds"] - ahead
            if "split" in t:
                t["split"]["records_seconds"] -= ahead
        t["gap_seconds"] = t["begin"] - prev["end"]
    if trials:
        trials[0]["gap_seconds"] = None


# -- summaries ----------------------------------------------------------------------------------------------

def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _slope(ys: list[float]) -> float | None:
    """Least-squares slope of ys against the trial index (per trial)."""
    pts = [(i, y) for i, y in enumerate(ys) if y is not None]
    if len(pts) < 2:
        return None
    mx = statistics.fmean(i for i, _ in pts)
    my = statistics.fmean(y for _, y in pts)
    den = sum((i - mx) ** 2 for i, _ in pts)
    return sum((i - mx) * (y - my) for i, y in pts) / den if den else None


def summarise(record: dict[str, Any]) -> dict[str, Any]:
    trials = record["trials"]
    k = max(1, min(5, len(trials) // 2))
    rss = [t["rss_mb"] for t in trials]
    peak = [t["peak_rss_mb"] for t in trials]
    train = [t["train_seconds"] for t in trials]
    first_epoch = [t["epoch_seconds"][0] if t["epoch_seconds"] else None for t in trials]
    s: dict[str, Any] = {
        "ok": record["ok"], "trials": len(trials), "window": k,
        "wall_seconds": record["wall_seconds"], "cpu_seconds": record["cpu_seconds"],
        "rss_mb_first": rss[0], "rss_mb_last": rss[-1], "rss_ratio": rss[-1] / rss[0] if rss[0] else None,
        "rss_mb_per_trial": _slope(rss),
        "peak_rss_mb_first": peak[0], "peak_rss_mb_last": peak[-1], "peak_rss_mb_per_trial": _slope(peak),
        "train_seconds_sum": sum(train), "outside_epochs_seconds": record["wall_seconds"] - sum(train),
        "train_seconds_first": _mean(train[:k]),
        "train_seconds_last": _mean(train[-k:]),
        "first_epoch_seconds_first": _mean(first_epoch[:k]), "first_epoch_seconds_last": _mean(first_epoch[-k:]),
        "trial_wall_median": _median([t["wall_seconds"] for t in trials]),
        "gap_median": _median([t.get("gap_seconds") for t in trials]),
        "phases": record.get("phases", {}),
        "tree_peak_rss_mb": record.get("tree_peak_rss_mb"), "tree_peak_processes": record.get("tree_peak_processes"),
        "tree_peak_split_mb": record.get("tree_peak_split_mb"),
        "tree_peak_pss_mb": record.get("tree_peak_pss_mb"), "tree_last_pss_mb": record.get("tree_last_pss_mb"),
    }
    s["train_ratio"] = s["train_seconds_last"] / s["train_seconds_first"] if s["train_seconds_first"] else None
    s["first_epoch_ratio"] = (s["first_epoch_seconds_last"] / s["first_epoch_seconds_first"]
                              if s["first_epoch_seconds_first"] else None)
    if record["peer"].startswith("segtrain") and trials:
        rest = trials[1:] or trials  # trial 1 starts its worker cold; the others take the pre-started one
        s["split_first"] = trials[0]["split"]
        s["split_median"] = {key: _median([t["split"][key] for t in rest]) for key in trials[0]["split"]}
        s["prestarted"] = sum(all(t["prestarted"]) for t in trials)
    return s


def targets(workload: str, summary: dict[str, dict], quick: bool) -> list[dict[str, Any]]:
    out = []
    st, base = summary.get("segtrain", {}), summary.get(BASELINE, {})

    def add(name: str, value: float | None, op: str, threshold: float, met: bool | None, note: str = "") -> None:
        out.append({"target": name, "value": value, "op": op, "threshold": threshold,
                    "met": bool(met) if value is not None else False, "quick": quick, "note": note})

    if not st.get("ok"):
        return out
    if workload == "growth":
        ratio = st["rss_ratio"]
        add("segtrain: last trial's RSS within 3 % of the first's (epoch-end RSS)", ratio, "within",
            RSS_FLAT, ratio is not None and abs(ratio - 1) <= RSS_FLAT)
        add(f"segtrain: training seconds, last {st['window']} trials ÷ first {st['window']}", st["train_ratio"],
            "<=", TIME_FLAT, st["train_ratio"] is not None and st["train_ratio"] <= TIME_FLAT)
    wall = st["wall_seconds"] / base["wall_seconds"] if base.get("wall_seconds") else None
    if workload == "growth" and base.get("ok"):  # issue 26: the zygote's targets
        cpu = st["cpu_seconds"] / base["cpu_seconds"] if base.get("cpu_seconds") else None
        add("segtrain (fork): total wall ÷ in-process Optuna loop", wall, "<=", 1.15, wall is not None and wall <= 1.15)
        add("segtrain (fork): CPU s ÷ in-process Optuna loop", cpu, "<=", 1.3, cpu is not None and cpu <= 1.3)
        base_pss = base.get("tree_last_pss_mb")
        pss = st["tree_peak_pss_mb"] / base_pss if st.get("tree_peak_pss_mb") and base_pss else None
        add("segtrain (fork): peak PSS of its processes ÷ the Optuna loop's after its last trial", pss, "<=", 1.3,
            pss is not None and pss <= 1.3)
    if workload == "overhead":
        add("segtrain: total wall ÷ in-process Optuna loop", wall, "<=", OVERHEAD_WALL,
            wall is not None and wall <= OVERHEAD_WALL)
    return out


# -- markdown -------------------------------------------------------------------------------------------------

def _f(value: Any, fmt: str = ".2f") -> str:
    return "–" if value is None else format(value, fmt)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


PEER_NAMES = {"segtrain": "segtrain sweep (workers forked from a zygote)",
              "segtrain-spawn": "segtrain sweep --start spawn (fresh interpreters)",
              "kerastuner": "KerasTuner RandomSearch (in-process)",
              "optuna": "Optuna loop (in-process)"}


def main_table(result: dict[str, Any]) -> str:
    rows = []
    base = result["summary"].get(BASELINE, {}).get("wall_seconds")
    for peer in result["peers"]:
        s = result["summary"].get(peer, {})
        if not s.get("ok"):
            rows.append([PEER_NAMES[peer], "failed", "", "", "", "", "", "", ""])
            continue
        rows.append([
            PEER_NAMES[peer],
            f"{s['rss_mb_first']:.0f} → {s['rss_mb_last']:.0f} MB (×{s['rss_ratio']:.3f})",
            _f(s["rss_mb_per_trial"], "+.2f"),
            f"{_f(s['train_seconds_last'])} / {_f(s['train_seconds_first'])} = **{_f(s['train_ratio'], '.3f')}**",
            f"{s['wall_seconds']:.1f} s",
            f"**{s['wall_seconds'] / base:.3f}**" if base else "–",
            f"{s['train_seconds_sum']:.1f} / {s['outside_epochs_seconds']:.1f} s",
            _f(s.get("wall_ratio_equal_epochs"), ".3f"),
            f"{s['cpu_seconds']:.0f} s ({_f(s.get('cpu_ratio'), '.2f')})",
        ])
    k = next((s["window"] for s in result["summary"].values() if s.get("ok")), 5)
    return _table(["peer", "RSS trial 1 → last (epoch ends)", "MB per trial (slope)",
                   f"train s per trial: last {k} / first {k}", "total wall", "wall ÷ Optuna in-process",
                   "Σ epochs / rest of the wall", "÷ Optuna, epochs as fast as Optuna's", "CPU s (÷ Optuna)"],
                  rows)


def detail_table(result: dict[str, Any]) -> str:
    rows = []
    for peer in result["peers"]:
        s = result["summary"].get(peer, {})
        if not s.get("ok"):
            continue
        ph = s["phases"]
        rows.append([
            PEER_NAMES[peer],
            f"{_f(s['peak_rss_mb_first'], '.0f')} → {_f(s['peak_rss_mb_last'], '.0f')} "
            f"({_f(s['peak_rss_mb_per_trial'], '+.2f')}/trial)",
            f"{_f(s['first_epoch_seconds_last'])} / {_f(s['first_epoch_seconds_first'])} = "
            f"{_f(s['first_epoch_ratio'], '.3f')}",
            _f(s["train_seconds_sum"], ".1f"),
            _f(s["trial_wall_median"]),
            _f(s["gap_median"], ".3f"),
            f"{_f(ph.get('start_seconds'), '.1f')} / {_f(ph.get('end_seconds'), '.1f')}",
            f"{_f(s['tree_peak_rss_mb'], '.0f')} ({' + '.join(map(str, s['tree_peak_split_mb'] or []))})",
            f"{_f(s.get('tree_peak_pss_mb'), '.0f')} / {_f(s.get('tree_last_pss_mb'), '.0f')}",
        ])
    k = next((s["window"] for s in result["summary"].values() if s.get("ok")), 5)
    return _table(["peer", "ru_maxrss MB trial 1 → last", f"first epoch s (trace): last {k} / first {k}",
                   "Σ train s", "trial wall s (median)", "gap between trials s (median)",
                   "before first trial / after last s", "peak RSS of the process tree MB (each process)",
                   "PSS of the tree MB: peak / last sample"], rows)


def split_table(s: dict[str, Any]) -> str:
    labels = [
        ("start_seconds", "worker: cold start (trial 1) / wait for the pre-started one"),
        ("setup_seconds", "set-up after the assignment (the run's data, messages)"),
        ("load_seconds", "build the model"),
        ("first_epoch_seconds", "first epoch (traces train and test steps)"),
        ("other_epochs_seconds", "other epochs"),
        ("fit_gap_seconds", "in fit outside the epochs"),
        ("save_seconds", "final checkpoint"),
        ("records_seconds", "supervisor: run directory, manifest, history"),
    ]
    rows = [[label, _f(s["split_first"][key]), _f(s["split_median"][key])] for key, label in labels]
    rows.append(["trial (its turn → manifest updated)", _f(sum(s["split_first"].values())),
                 _f(sum(v for v in s["split_median"].values() if v is not None))])
    rows.append(["between trials: tell, sample, claim, open the next run", "–", _f(s["gap_median"], ".3f")])
    return _table(["segtrain, per trial", "trial 1 s", "trials 2.. s (median)"], rows)


def per_trial_table(result: dict[str, Any]) -> str:
    peers = [p for p in result["peers"] if result["summary"].get(p, {}).get("ok")]
    runs = {r["peer"]: r for r in result["runs"]}
    n = max((len(runs[p]["trials"]) for p in peers), default=0)
    rows = []
    for i in range(n):
        row = [str(i + 1)]
        for p in peers:
            t = runs[p]["trials"][i] if i < len(runs[p]["trials"]) else None
            row.append("–" if t is None else
                       f"{_f(t['rss_mb'], '.0f')} / {t['train_seconds']:.2f} / {t['wall_seconds']:.2f}")
        rows.append(row)
    return _table(["trial", *(f"{p}: RSS MB / train s / trial wall s" for p in peers)], rows)


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    cfg = result["config"]
    base = result["summary"].get(BASELINE, {}).get("wall_seconds")
    lines = [
        f"# segtrain sweep benchmark: {result['workload']}, {result['started'][:10]}"
        + (" (--quick: not meaningful)" if result["quick"] else ""),
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['ram_gb']} GB RAM"
        + (f", {m['hypervisor']} VM" if m.get("hypervisor") else "") + f"; {m['os']}  ",
        f"Software: Python {m['python']}, TensorFlow {m['tensorflow']}, Keras {m['keras']}, NumPy {m['numpy']}, "
        f"Optuna {result['versions'].get('optuna')}, KerasTuner {result['versions'].get('keras_tuner')}, "
        f"segtrain {m['segtrain']} at {result['commit_short'] or '?'}"
        + (f" (uncommitted changes in {len(m['git_dirty_paths'])} files of segtrain/ and bench/)"
           if m["git_dirty_paths"] else "") + "  ",
        f"Load average (1 min): {result['loadavg_start'][0]:.2f} at the start, "
        f"{result['loadavg_end'][0]:.2f} at the end; "
        "per peer in the JSON. The machine may be shared with other jobs (a test suite): wall times move "
        "by 10–25 % from run to run; read ratios from one run.  ",
        f"Workload: `{os.path.relpath(SCRIPT, ROOT)}` (MLP 64 → 64..256 → 64..256 → 10, Adam lr 1e-4..1e-2 log, "
        f"2,400 + 600 samples, batch 32), {cfg['trials']} trials × {cfg['epochs']} epochs, random sampling, "
        f"seed {cfg['seed']}; segtrain: `--segment {cfg['segment']}`, `--pruner none`, process isolation. "
        f"Peers ran one after another in this order: {', '.join(result['peers'])}. "
        f"segtrain and Optuna trained the same params: {result['same_params']}.",
        "",
        "## Result",
        "",
        main_table(result),
        "",
        "## Targets (issue 13)",
        "",
        _table(["target", "measured", "result"],
               [[t["target"], f"{_f(t['value'], '.3f')} ({t['op']} {t['threshold']})",
                 "met" if t["met"] else "**not met**"] for t in result["targets"]]) if result["targets"] else
        "(none: segtrain did not run, or failed)",
        "",
        "## More per peer",
        "",
        detail_table(result),
        "",
    ]
    st = result["summary"].get("segtrain", {})
    if st.get("ok"):
        ph = st["phases"]
        lines += [
            "## Where segtrain's time goes",
            "",
            f"Before the first trial {ph['start_seconds']:.1f} s (of which {ph['cli_seconds']:.1f} s until the "
            "sweep directory was written; the rest starts the zygote or the first worker, which imports the "
            "script and TensorFlow and answers the supervisor's questions about it, "
            f"and opens the study); after the last trial {ph['end_seconds']:.1f} s. "
            f"{st['prestarted']} of {st['trials']} trials took a pre-started worker. From each trial's "
            "segments.jsonl, epochs.jsonl and manifest timestamps:",
            "",
            split_table(st),
            "",
        ]
        if base:
            rs = result["summary"][BASELINE]
            lines += [
                f"Against the in-process Optuna loop: {st['wall_seconds'] - base:+.1f} s in total; per trial "
                f"{st['trial_wall_median'] + (st['gap_median'] or 0):.2f} s against "
                f"{rs['trial_wall_median'] + (rs['gap_median'] or 0):.2f} s (median trial wall + gap); training "
                f"(Σ epochs) {st['train_seconds_sum']:.1f} s against {rs['train_seconds_sum']:.1f} s "
                "(segtrain feeds `fit` from its own data pipeline, the peers from Keras' array adapter).",
                "",
            ]
    lines += ["## Per trial", "", per_trial_table(result), ""]
    for r in result["runs"]:
        lines += [f"* {r['peer']}: `{r['command']}` — exit {r['exit_code']}, wall {r['wall_seconds']:.1f} s, "
                  f"load average {r['loadavg_1min'][0]:.2f} → {r['loadavg_1min'][1]:.2f}"]
        if not r["ok"]:
            lines += ["", "```", str(r.get("error", ""))[-3000:], "```", ""]
    lines += ["", "## Columns", "", COLUMNS, ""]
    return "\n".join(lines)


COLUMNS = """\
* **RSS** (epoch ends): the highest RSS of the process that trained the trial, read from /proc/self/statm at
  each epoch's end (segtrain: the worker's, epochs.jsonl `rss_mb`; the peers: a Keras callback). **MB per
  trial**: the least-squares slope of that over the trials.
* **ru_maxrss**: segtrain's `peak_rss_mb` of `segtrain report --json` (each trial's worker); the in-process
  peers' process peak so far, at the trial's end (it never falls).
* **train s**: the sum of the trial's epoch seconds (`on_epoch_begin` to `on_epoch_end`): process start,
  data, model build and checkpoints are not in it. last k / first k: means over the last and first k trials.
* **peak RSS of the process tree**: the highest sum of the RSS of every process the peer ran at once,
  sampled every 0.25 s (segtrain: the supervisor, the trial's worker and the spare started for the next
  trial); the number of processes at that moment.
* **Σ epochs / rest of the wall**: the peer's total wall split into the sum of every epoch's seconds and the
  rest (process and TF start-up, model builds, checkpoints, waits for workers, the search's bookkeeping).
  **÷ Optuna, epochs as fast as Optuna's**: (Optuna's Σ epochs + this peer's rest) ÷ Optuna's wall: the
  ratio with the epochs' speed taken out, which other jobs on the machine move most; it leaves out what
  makes a peer's epochs slower (for segtrain: the next trial's worker importing TensorFlow meanwhile).
* **total wall**: spawn to exit of the peer's process (segtrain: the `segtrain sweep` command, supervisor
  and workers). **CPU s**: user + system of the process and its children.
* **trial wall**: segtrain: the trial's manifest `created` (or, where the trial was asked for ahead and its
  run opened while the one before trained, that one's end) → `updated`; the peers:
  the objective / KerasTuner's `on_trial_begin` → `on_trial_end`. **gap**: from one trial's end to the
  next one's begin (sampling, telling the study, gc, claims)."""


# -- main ----------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description="segtrain sweep against KerasTuner and an in-process Optuna loop "
                                                 "(see bench/README.md).")
    parser.add_argument("--workload", choices=tuple(WORKLOADS), default="growth")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['trials']} trials x {QUICK['epochs']} epoch: a smoke test, "
                             "numbers not meaningful")
    parser.add_argument("--trials", type=int, default=None, help="override the workload's number of trials")
    parser.add_argument("--epochs", type=int, default=None, help="override the workload's epochs per trial")
    parser.add_argument("--segment", type=int, default=None, help="segtrain's --segment (default: the epochs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, from {', '.join(PEERS)}")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the .md and .json (default: bench/results, or bench/runs/quick with --quick)")
    parser.add_argument("--name", default=None, help="file name without extension "
                                                     "(default: <date>-<machine>-sweep-<workload>)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="where the sweep directories and logs go (default: bench/runs/sweep-<timestamp>)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per peer (default 3600)")
    parser.add_argument("--render", type=Path, default=None, metavar="RESULT.json",
                        help="recompute the summaries of a result's runs and rewrite its .md and .json")
    # internal: one in-process peer
    parser.add_argument("--peer", choices=("optuna", "kerastuner"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--script", type=Path, default=SCRIPT, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        return peer_main(args)
    if args.render:
        result = json.loads(args.render.read_text())
        for run in result["runs"]:
            _between_trials(run.get("trials") or [])  # as collected now (a trial asked for ahead)
        summarise_result(result)
        return write(result, Path(str(args.render).removesuffix(".json")))

    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    defaults = QUICK if args.quick else WORKLOADS[args.workload]
    cfg = {"trials": args.trials or defaults["trials"], "epochs": args.epochs or defaults["epochs"],
           "seed": args.seed}
    cfg["segment"] = args.segment or cfg["epochs"]

    bench_run = _bench_run()
    started = dt.datetime.now().astimezone()
    runs_dir = (args.runs_dir or BENCH / "runs" / f"sweep-{started:%Y%m%d-%H%M%S}").resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    out_dir = (args.out or (BENCH / "runs" / "quick" if args.quick else BENCH / "results")).resolve()
    m = bench_run.machine()
    command = shlex.join(["python", "bench/sweep.py", *argv])
    result: dict[str, Any] = {
        "schema": SCHEMA, "command": command, "python_executable": sys.executable, "quick": args.quick,
        "workload": args.workload, "title": WORKLOADS[args.workload]["title"], "config": cfg, "peers": peers,
        "started": started.isoformat(timespec="seconds"), "machine": m,
        "commit_short": bench_run._git("rev-parse", "--short", "HEAD"), "loadavg_start": list(os.getloadavg()),
        "runs_dir": os.path.relpath(runs_dir, ROOT), "runs": [],
    }
    print(f"segtrain sweep bench: {command}\n  {m['cpu_model']}, {m['cpus']} CPUs; {cfg['trials']} trials x "
          f"{cfg['epochs']} epochs; runs in {runs_dir}", flush=True)
    t_all = time.perf_counter()
    for peer in peers:
        rec = run_peer(peer, cfg, runs_dir, bench_run, args.timeout)
        result["runs"].append(rec)
        if rec["ok"]:
            s = summarise(rec)
            print(f"  {peer:<11} wall {rec['wall_seconds']:.1f} s, "
                  f"RSS {s['rss_mb_first']:.0f} → {s['rss_mb_last']:.0f} MB "
                  f"({_f(s['rss_mb_per_trial'], '+.2f')}/trial), train s last/first {_f(s['train_ratio'], '.3f')}",
                  flush=True)
        else:
            print(f"  {peer:<11} FAILED (exit {rec['exit_code']}): {str(rec.get('error', ''))[-1500:]}", flush=True)
    result["suite_seconds"] = time.perf_counter() - t_all
    result["loadavg_end"] = list(os.getloadavg())
    result["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    summarise_result(result)
    result["versions"] = {k: v for r in result["runs"] for k, v in (r.get("versions") or {}).items()}
    result["versions"].setdefault("optuna", bench_run._version("optuna"))
    result["versions"].setdefault("keras_tuner", bench_run._version("keras-tuner"))
    out_dir.mkdir(parents=True, exist_ok=True)
    name = args.name or f"{started:%Y-%m-%d}-{bench_run.machine_slug(m)}-sweep-{args.workload}"
    return write(result, out_dir / name)


def summarise_result(result: dict[str, Any]) -> None:
    """Summaries, ratios and targets from the runs (also what `--render` recomputes)."""
    result["summary"] = {r["peer"]: (summarise(r) if r["ok"] else {"ok": False}) for r in result["runs"]}
    base = result["summary"].get(BASELINE, {})
    for s in result["summary"].values():
        if s.get("ok") and base.get("ok"):
            s["wall_ratio"] = s["wall_seconds"] / base["wall_seconds"]
            s["cpu_ratio"] = s["cpu_seconds"] / base["cpu_seconds"]
            # the wall this peer would take if its epochs had run as fast as the baseline's: the baseline's
            # epochs plus this peer's own time outside epochs (less sensitive to other jobs' load)
            s["wall_ratio_equal_epochs"] = ((base["train_seconds_sum"] + s["outside_epochs_seconds"])
                                            / base["wall_seconds"])
    runs = {r["peer"]: r for r in result["runs"]}
    if runs.get("segtrain", {}).get("ok") and runs.get("optuna", {}).get("ok"):
        pairs = zip(runs["segtrain"]["trials"], runs["optuna"]["trials"], strict=True)
        same = all(a["params"] == b["params"] for a, b in pairs)
        result["same_params"] = "yes" if same else "no"
    else:
        result["same_params"] = "not compared"
    result["targets"] = targets(result["workload"], result["summary"], result["quick"])
    result["ok"] = all(r["ok"] for r in result["runs"])


def write(result: dict[str, Any], base: Path) -> int:
    Path(f"{base}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    Path(f"{base}.md").write_text(markdown(result))
    print("\n" + main_table(result) + "\n")
    for t in result["targets"]:
        print(f"  target {t['target']}: {_f(t['value'], '.3f')} {t['op']} {t['threshold']}: "
              f"{'met' if t['met'] else 'NOT met'}")
    print(f"\nWrote {base}.md and .json ({result['suite_seconds'] / 60:.1f} min)")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Workers forked from a zygote (`--start fork`, the default): the same run as fresh interpreters give, bit for
bit; every worker recorded as forked; kill -9 of the zygote or of the parent leaves no process behind and the
same command resumes; a zygote that forks forty workers stays as it was."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import (
    BACKENDS,
    ROOT,
    SCRIPTS,
    assert_bitwise_equal,
    assert_exit,
    cli_env,
    epochs_logged,
    final_variables,
    fit_args,
    run_cli,
    segtrain_cmd,
    wait_for,
)

pytestmark = pytest.mark.slow


def _segments(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _zygote_of(parent: int) -> int | None:
    return next((p for p in _children(parent) if "segtrain.worker.zygote_main" in _cmdline(p)), None)


FORMATS = [("tensorflow", "keras"), ("tensorflow", "h5"), ("tensorflow", "savedmodel")]
FORMATS += [pytest.param(*p.values, "keras", marks=p.marks) for p in BACKENDS[1:]]


@pytest.mark.parametrize(("backend", "fmt"), FORMATS)
def test_fork_and_spawn_train_the_same_run_bit_for_bit(tmp_path, backend, fmt):
    runs = {}
    for start in ("fork", "spawn"):
        run_dir = tmp_path / start
        args = fit_args("dict_io", run_dir, 6, 2, "--seed", 5, "--start", start, "--format", fmt)
        proc = run_cli(*args, env={"KERAS_BACKEND": backend})
        assert_exit(proc, 0)
        runs[start] = run_dir
        assert [s["start"] for s in _segments(run_dir)] == [start] * 3
        assert all(s["start_note"] is None for s in _segments(run_dir))
    code = (  # loaded on the runs' own backend
        "import sys; sys.path.insert(0, 'tests'); from conftest import assert_bitwise_equal, final_variables; "
        f"assert_bitwise_equal(final_variables({str(runs['fork'])!r}), final_variables({str(runs['spawn'])!r}))"
    )
    check = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(KERAS_BACKEND=backend), cwd=ROOT
    )
    assert_exit(check, 0)
    history = [json.loads((runs[s] / "history.json").read_text()) for s in ("fork", "spawn")]
    assert history[0] == history[1]


def _reference(tmp_path: Path) -> Path:
    run_dir = tmp_path / "reference"
    assert_exit(run_cli(*fit_args("slow_epochs", run_dir, 6, 2, "--seed", 2)), 0)
    return run_dir


def test_kill_9_of_the_zygote_ends_its_workers_and_the_same_command_resumes(tmp_path):
    run_dir = tmp_path / "run"
    args = fit_args("slow_epochs", run_dir, 6, 2, "--seed", 2)
    proc = subprocess.Popen(
        segtrain_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(), text=True
    )
    try:
        wait_for(lambda: epochs_logged(run_dir) >= 3, "the third epoch", proc)  # in the second segment: forked
        zygote = _zygote_of(proc.pid)
        assert zygote is not None
        workers = _children(zygote)
        assert workers, "the training worker is the zygote's child"
        os.kill(zygote, signal.SIGKILL)
        wait_for(lambda: not any(_alive(w) for w in workers), "the workers' end", timeout=10)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, "a run whose worker was killed did not finish"
    assert "killed by signal 9" in err
    again = run_cli(*args)
    assert_exit(again, 0)
    assert_bitwise_equal(final_variables(_reference(tmp_path)), final_variables(run_dir))


def test_kill_9_of_the_parent_leaves_no_zygote_and_no_worker(tmp_path):
    run_dir = tmp_path / "run"
    args = fit_args("slow_epochs", run_dir, 6, 2, "--seed", 2)
    proc = subprocess.Popen(segtrain_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env())
    wait_for(lambda: epochs_logged(run_dir) >= 3, "the third epoch", proc)
    zygote = _zygote_of(proc.pid)
    assert zygote is not None
    family = [zygote, *_children(zygote)]
    assert len(family) >= 2  # the zygote, the training worker (and the spare, where it has started)
    proc.kill()
    proc.wait()
    wait_for(lambda: not any(_alive(p) for p in family), "the zygote's and the workers' end", timeout=10)
    assert_exit(run_cli(*args), 0)  # the same command goes on from the newest checkpoint


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_forty_forks_leave_the_zygote_as_it_was():
    """It never trains: what it holds after its first worker, it holds after its fortieth."""
    from segtrain.worker.zygote import Zygote

    zygote = Zygote(dict(os.environ))
    try:
        assert zygote.wait_ready() is None, zygote.wait_ready()
        rss = []
        for _ in range(40):
            read, write = os.pipe()
            # A worker without a worker's environment: it fails at once (the fork is what is measured here).
            worker, why = zygote.fork(dict(os.environ), [], write)
            os.close(write)
            assert worker is not None, why
            assert worker.wait(timeout=30) == 1
            for stream in (worker.stdin, worker.stdout, worker.stderr):
                stream.close()
            os.close(read)
            rss.append(_rss_kb(zygote.pid))
        # Flat after its first forks: a page touched once (allocator timing on a loaded machine) is not a leak;
        # the leak this guards against (a 1 MiB receive buffer a request) grew 2 kB a fork, 60 kB over these 30.
        page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
        assert rss[-1] - rss[9] <= page_kb, f"the zygote grew over 30 forks: {rss} kB"
    finally:
        zygote.close()
    assert not _alive(zygote.pid)


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_worker_collects_its_own_garbage_and_leaves_the_imported_heap_frozen(tmp_path, start):
    """The zygote imports with the collector off and freezes what it imported (a spawned spare, what its
    import made): every worker trains with the collector on, and its collections skip that heap."""
    log = tmp_path / "gc.jsonl"
    args = fit_args("gc_state", tmp_path / "run", 4, 2, "--seed", 1, "--start", start)
    assert_exit(run_cli(*args, env={"GC_LOG": str(log)}), 0)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    workers = list(dict.fromkeys(r["pid"] for r in records))
    assert len(records) == 4 and len(workers) == 2, records
    assert all(r["enabled"] for r in records), records
    # TensorFlow's and Keras' import alone leave ~400,000 objects; the first spawned worker, which does not know
    # its backend before its script imports it, imports as Python does.
    frozen = [r["frozen"] for r in records if start == "fork" or r["pid"] == workers[1]]
    assert frozen and min(frozen) > 100_000, records


@pytest.mark.jax
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed (test extra)")
def test_workers_of_a_run_share_compiled_code_inside_the_run_directory(tmp_path):
    """JAX's persistent compilation cache, in RUN_DIR/compiled with the run directory's permissions, never
    in a shared place; the run is the same as without it (the fork/spawn test trains without a warm cache)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o750)
    run_dir.chmod(0o750)
    proc = run_cli(*fit_args("dict_io", run_dir, 4, 2, "--seed", 5, "--no-prestart"), env={"KERAS_BACKEND": "jax"})
    assert_exit(proc, 0)
    cache = run_dir / "compiled"
    assert any(cache.iterdir()), "no compiled program was kept"
    assert (cache.stat().st_mode & 0o777) == 0o750


def test_the_sweeps_own_process_imports_no_framework(tmp_path):
    """Its trials' params come from search_space(trial) run in a worker, each call made on the study's trial here."""
    code = (
        "import sys, segtrain; "
        f"out = segtrain.sweep({str(SCRIPTS / 'sweep_mlp.py')!r}, trials=3, epochs=2, segment=1, seed=0, "
        f"sweep_dir={str(tmp_path / 'sweep')!r}, progress=False, verbosity='quiet'); "
        "assert out.exit_code == 0, out.message; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules)); "
        "print(sorted(str(t.params) for t in out.study.trials))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), cwd=ROOT)
    assert_exit(proc, 0)
    imported, params = proc.stdout.splitlines()[-2:]
    assert imported == "[]"
    assert params.count("'units'") == 3  # every trial got its params from the script's search_space

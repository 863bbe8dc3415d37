"""Seeing the slowdown: `segtrain report` (table, JSON, PNG), `segtrain status`, and the trend warnings.

Most tests build the logs a run writes (manifest.json, epochs.jsonl,
segments.jsonl) by hand, so that leaks, crashes and resumes are exact and the
tests take milliseconds; one test runs a real `segtrain fit`, looks at it
while it trains, kills it with SIGKILL, looks again, and resumes it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from segtrain.telemetry import trends
from segtrain.cli import app
from segtrain.telemetry.progress import RunProgress
from segtrain.telemetry.report import JSON_SCHEMA
from segtrain.run.paths import RunPaths, is_locked

SCRIPTS = Path(__file__).resolve().parent / "scripts"
ROOT = Path(__file__).resolve().parent.parent
cli = CliRunner()

# -- a small JSON Schema check (draft 2020-12 keywords that JSON_SCHEMA uses) ----------------------

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def validate(instance: Any, schema: dict, where: str = "$") -> None:
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        assert any(_is_type(instance, n) for n in names), f"{where}: {instance!r} is not {types}"
    if "enum" in schema:
        assert instance in schema["enum"], f"{where}: {instance!r} not in {schema['enum']}"
    if "minimum" in schema and instance is not None:
        assert instance >= schema["minimum"], f"{where}: {instance} < {schema['minimum']}"
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            assert key in instance, f"{where}: missing {key!r}"
        for key, value in instance.items():
            if key in schema.get("properties", {}):
                validate(value, schema["properties"][key], f"{where}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(value, schema["additionalProperties"], f"{where}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            validate(item, schema["items"], f"{where}[{i}]")


# The fields the issue promises, whatever else the schema grows.
PROMISED = {"status", "epochs_total", "epochs_done", "segments"}
PROMISED_SEGMENT = {"index", "start_epoch", "end_epoch", "seconds", "seconds_per_epoch", "slowdown", "peak_rss_mb",
                    "boundary_seconds", "isolation", "first_epoch_seconds"}


def report_json(run_dir: Path) -> dict:
    result = cli.invoke(app, ["report", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    validate(rep, JSON_SCHEMA)
    assert PROMISED <= rep.keys()
    for seg in rep["segments"]:
        assert PROMISED_SEGMENT <= seg.keys()
    return rep


def status_json(run_dir: Path) -> dict:
    result = cli.invoke(app, ["status", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def newest_epoch_lines(run_dir: Path) -> dict[int, dict]:
    """Each epoch's newest line of epochs.jsonl: a resume re-runs epochs from its checkpoint on."""
    newest: dict[int, dict] = {}
    for raw in (run_dir / "epochs.jsonl").read_text().splitlines():
        line = json.loads(raw)
        for later in [e for e in newest if e >= line["epoch"]]:
            del newest[later]
        newest[line["epoch"]] = line
    return newest


def assert_consistent(rep: dict, run_dir: Path) -> None:
    """Segments cover every epoch once; their numbers agree with epochs.jsonl and add up."""
    segs = rep["segments"]
    covered = [e for s in segs for e in range(s["start_epoch"], s["end_epoch"])]
    assert covered == list(range(rep["epochs_done"])), "segments must cover each epoch once, in order"
    assert rep["epochs_done"] <= rep["epochs_total"]
    epochs = newest_epoch_lines(run_dir)
    assert sorted(epochs) == covered
    assert segs[0]["slowdown"] == 1.0
    for s in segs:
        seconds = [epochs[e]["seconds"] for e in range(s["start_epoch"], s["end_epoch"])]
        assert s["epochs"] == len(seconds)
        assert {epochs[e]["segment"] for e in range(s["start_epoch"], s["end_epoch"])} == {s["index"]}
        assert s["first_epoch_seconds"] == pytest.approx(seconds[0])
        assert s["seconds_per_epoch"] == pytest.approx(statistics.median(seconds[1:] or seconds))
        assert s["slowdown"] == pytest.approx(s["seconds_per_epoch"] / segs[0]["seconds_per_epoch"])
        assert sum(seconds) <= s["train_seconds"] * 1.01 + 0.05, "epochs are part of the training time"
        if s["boundary_seconds"] is not None:
            parts = [s[k] or 0.0 for k in ("start_seconds", "clear_seconds", "load_seconds", "save_seconds")]
            assert s["boundary_seconds"] == pytest.approx(sum(parts))
            assert s["train_seconds"] + s["boundary_seconds"] <= s["seconds"] * 1.01 + 0.05
        rss = [epochs[e]["rss_mb"] for e in range(s["start_epoch"], s["end_epoch"])]
        assert s["peak_rss_mb"] >= max(rss)
    assert rep["seconds"] == pytest.approx(sum(s["seconds"] for s in segs))
    assert rep["train_seconds"] == pytest.approx(sum(s["train_seconds"] for s in segs))
    assert rep["boundary_seconds"] == pytest.approx(sum(s["boundary_seconds"] or 0.0 for s in segs))


# -- synthetic runs ----------------------------------------------------------------------------------

class FakeRun:
    """Writes the logs a run would: epochs that slow down and grow within each segment (a leak that a
    boundary resets), with crashes and signals where a test asks for them."""

    def __init__(self, root: Path, epochs: int, segment: int, isolation: str = "process", device: bool = False,
                 slope: float = 0.01, rss_slope: float = 5.0, start_seconds: float = 2.0, base: float = 0.2,
                 first: float = 1.5):
        self.root, self.total, self.length, self.isolation = root, epochs, segment, isolation
        self.device, self.slope, self.rss_slope, self.start_seconds = device, slope, rss_slope, start_seconds
        self.base, self.first = base, first
        self.epoch_lines: list[dict] = []
        self.segment_lines: list[dict] = []
        self.pid = 1000

    def attempt(self, index: int, start: int, end: int, outcome: str | None = None, recorded: bool = True,
                stop_reason: str | None = None, loss: float | None = None) -> None:
        """Epochs [start, end) of segment `index` in one new process; its segments.jsonl line if `recorded`."""
        self.pid += 1
        seconds, rss = [], []
        for i, epoch in enumerate(range(start, end)):
            s = self.first if i == 0 else self.base + self.slope * i
            mb = 600 + self.rss_slope * i
            seconds.append(s)
            rss.append(mb)
            self.epoch_lines.append({
                "epoch": epoch, "segment": index, "seconds": s, "steps": 4, "samples_per_second": 128 / s,
                "rss_mb": mb, "device_mb": 300 + 8 * i if self.device else None,
                "device_peak_mb": 400 + 8 * i if self.device else None, "pid": self.pid,
                "logs": {"loss": 1.0 / (epoch + 1)},
            })
        if not recorded:
            return
        load, save = 0.3, 0.2
        setup = {"start_seconds": self.start_seconds} if self.isolation == "process" or index == 0 else \
            {"clear_seconds": 0.4}
        boundary = sum(setup.values()) + load + save
        train = sum(seconds) + 0.05
        final = {"loss": loss if loss is not None else 1.0 / end}
        self.segment_lines.append({
            "index": index, "start_epoch": start, "end_epoch": end,
            "outcome": outcome or ("finished" if end == self.total else "boundary"), "stop_reason": stop_reason,
            "train_seconds": train, "load_seconds": load, "save_seconds": save, "first_epoch_seconds": seconds[0],
            "epoch_seconds": seconds, "peak_rss_mb": max(rss), "peak_device_mb": 420.0 if self.device else None,
            "final_logs": final, "checkpoint": f"ckpt-{end:06d}", "isolation": self.isolation,
            "wall_seconds": train + boundary + 0.01, "pid": self.pid, "boundary_seconds": boundary, **setup,
        })

    def segments(self, first: int, last: int) -> None:
        """Whole segments `first`..`last` (0-based), each in its own attempt."""
        for index in range(first, last + 1):
            self.attempt(index, index * self.length, min(self.total, (index + 1) * self.length))

    def write(self, status: str = "finished", stop_reason: str | None = None) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = {"config": {"epochs": self.total, "segment": self.length, "isolation": self.isolation},
                    "status": status, "stop_reason": stop_reason, "pid": 4242,
                    "epochs_done": self.segment_lines[-1]["end_epoch"] if self.segment_lines else 0}
        (self.root / "manifest.json").write_text(json.dumps(manifest))
        (self.root / "epochs.jsonl").write_text("".join(json.dumps(e) + "\n" for e in self.epoch_lines))
        (self.root / "segments.jsonl").write_text("".join(json.dumps(s) + "\n" for s in self.segment_lines))
        return self.root


def leaky_run(root: Path) -> Path:
    """60 epochs in segments of 10 with a leak; segment 3 crashes after 6 epochs and is re-run from its
    start; segment 5 is stopped by SIGTERM after 3 epochs and resumed; device memory recorded."""
    run = FakeRun(root, 60, 10, device=True)
    run.segments(0, 1)
    run.attempt(2, 20, 26, recorded=False)  # killed: epochs logged, no segment line
    run.segments(2, 3)
    run.attempt(4, 40, 43, outcome="preempted", stop_reason="SIGTERM")
    run.attempt(4, 43, 50)
    run.segments(5, 5)
    return run.write()


def healthy_run(root: Path) -> Path:
    """Flat time and memory, cheap boundaries: nothing to warn about."""
    run = FakeRun(root, 40, 20, slope=0.0, rss_slope=0.0, start_seconds=0.05, base=2.0, first=2.5)
    run.segments(0, 1)
    for i, line in enumerate(run.epoch_lines):  # some noise, no trend
        line["seconds"] += 0.1 * ((i * 7) % 3 - 1) if i % 20 else 0.0
    return run.write()


# -- report: JSON ------------------------------------------------------------------------------------

def test_json_report_of_a_resumed_run_takes_the_newest_attempt(tmp_path):
    rep = report_json(leaky_run(tmp_path / "run"))
    assert_consistent(rep, tmp_path / "run")
    assert (rep["status"], rep["epochs_total"], rep["epochs_done"]) == ("finished", 60, 60)
    assert rep["epochs_rerun"] == 6
    spans = [(s["index"], s["start_epoch"], s["end_epoch"], s["outcome"]) for s in rep["segments"]]
    assert spans == [(0, 0, 10, "boundary"), (1, 10, 20, "boundary"), (2, 20, 30, "boundary"),
                     (3, 30, 40, "boundary"), (4, 40, 43, "preempted"), (4, 43, 50, "boundary"),
                     (5, 50, 60, "finished")]
    assert [s["stop_reason"] for s in rep["segments"]][4] == "SIGTERM"
    first = rep["segments"][0]
    assert first["seconds_per_epoch"] == pytest.approx(0.25)  # median of 0.21 .. 0.29, first epoch left out
    assert first["first_epoch_seconds"] == 1.5
    assert first["retrace_seconds"] == pytest.approx(1.25)
    assert first["peak_rss_mb"] == 645 and first["memory_growth"] == 1.0
    assert first["peak_device_mb"] == 472 and first["device_growth"] == 1.0
    assert rep["segments"][4]["slowdown"] == pytest.approx(0.215 / 0.25)  # median of 0.21, 0.22
    assert (first["start_seconds"], first["load_seconds"], first["save_seconds"]) == (2.0, 0.3, 0.2)


def test_session_isolation_reports_the_clear(tmp_path):
    run = FakeRun(tmp_path / "run", 20, 5, isolation="session")
    run.segments(0, 3)
    rep = report_json(run.write())
    assert_consistent(rep, tmp_path / "run")
    assert {s["isolation"] for s in rep["segments"]} == {"session"}
    assert rep["segments"][0]["start_seconds"] == 2.0 and rep["segments"][0]["clear_seconds"] is None
    assert all(s["clear_seconds"] == 0.4 and s["start_seconds"] is None for s in rep["segments"][1:])
    table = cli.invoke(app, ["report", str(tmp_path / "run")], env={"COLUMNS": "160"}).stdout
    assert "clear" in table


def test_findings_say_where_and_by_how_much(tmp_path):
    rep = report_json(leaky_run(tmp_path / "run"))
    kinds = {(f["kind"], f["segment"]) for f in rep["findings"]}
    for segment in (0, 1, 2, 3, 5):  # whole segments; the 3-epoch piece of segment 5 is too short to judge
        assert ("time_climb", segment) in kinds and ("rss_climb", segment) in kinds
        assert ("device_climb", segment) in kinds
    time_climb = next(f for f in rep["findings"] if f["kind"] == "time_climb" and f["segment"] == 1)
    assert (time_climb["start_epoch"], time_climb["end_epoch"]) == (11, 20)
    assert time_climb["ratio"] == pytest.approx(0.29 / 0.21, rel=0.01)
    assert "segment 2" in time_climb["message"] and "epochs 12–20" in time_climb["message"]
    assert any(f["kind"] == "boundary_cost" and "--segment" in f["message"] for f in rep["findings"])
    assert report_json(healthy_run(tmp_path / "healthy"))["findings"] == []


def test_nan_loss_is_null_in_json(tmp_path):
    run = FakeRun(tmp_path / "run", 20, 10)
    run.segments(0, 0)
    run.attempt(1, 10, 13, outcome="nan", stop_reason="loss became nan in epoch 13", loss=math.nan)
    rep = report_json(run.write(status="failed", stop_reason="loss became nan in epoch 13"))
    assert rep["segments"][-1]["final_logs"]["loss"] is None
    assert rep["segments"][-1]["outcome"] == "nan"


# -- report: table -----------------------------------------------------------------------------------

def test_table_has_a_row_per_segment_and_a_summary(tmp_path):
    result = cli.invoke(app, ["report", str(leaky_run(tmp_path / "run"))], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    for header in ("s/epoch", "slow-", "RSS MB", "device", "start", "load", "save", "bound-"):
        assert header in out
    assert "41–43" in out and "preempted" in out and "segment 5 preempted: SIGTERM" in out
    summary = next(line for line in out.splitlines() if line.startswith("finished:"))
    assert "60/60 epochs in 7 segments" in summary
    assert "6 epochs re-run after crashes" in out
    assert "warning:" in out and "climbed" in out


def test_narrow_terminal_drops_the_boundary_split_not_the_essentials(tmp_path):
    out = cli.invoke(app, ["report", str(leaky_run(tmp_path / "run"))], env={"COLUMNS": "80"}).stdout
    table = out.split("finished:")[0]
    assert max(len(line) for line in table.splitlines()) <= 80
    for header in ("epochs", "s/epoch", "slow-", "RSS MB", "bound-"):
        assert header in table


def test_report_of_a_new_run_says_nothing_trained_yet(tmp_path):
    FakeRun(tmp_path / "run", 10, 5).write(status="running")
    result = cli.invoke(app, ["report", str(tmp_path / "run")])
    assert result.exit_code == 0 and "no epoch finished yet" in result.stdout
    assert report_json(tmp_path / "run")["segments"] == []


@pytest.mark.parametrize("command", ["report", "status"])
def test_not_a_run_dir_is_a_clear_error(tmp_path, command):
    for target in (tmp_path, tmp_path / "missing"):
        result = cli.invoke(app, [command, str(target)])
        assert result.exit_code == 2
        assert "segtrain run directory" in result.stderr or "does not exist" in result.stderr
        assert result.stdout == ""


# -- report: plot ------------------------------------------------------------------------------------

def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_plot_draws_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots" / "run.png"
    result = cli.invoke(app, ["report", str(leaky_run(tmp_path / "run")), "--plot", str(out)])
    assert result.exit_code == 0, result.output
    width, height = png_size(out)
    assert width >= 1000 and height >= 700
    assert out.stat().st_size > 30_000  # three panels of lines and bars, not an empty canvas
    assert f"Plot written to {out}" in result.stderr


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    out = tmp_path / "run.png"
    result = cli.invoke(app, ["report", str(leaky_run(tmp_path / "run")), "--plot", str(out)])
    assert result.exit_code == 2
    assert "pip install 'segtrain[plot]'" in result.stderr
    assert not out.exists() and result.stdout == ""


# -- status ------------------------------------------------------------------------------------------

def test_status_of_a_finished_run(tmp_path):
    st = status_json(leaky_run(tmp_path / "run"))
    assert (st["state"], st["alive"], st["epochs_done"], st["epochs_total"]) == ("finished", False, 60, 60)
    assert (st["segments_done"], st["segments_total"]) == (6, 6)
    assert st["checkpoint"] is None  # the fake run wrote no checkpoint folders
    assert st["last_epoch"]["epoch"] == 59 and st["last_epoch"]["rss_mb"] == 645
    assert st["hint"] is None


def test_status_of_a_killed_run_says_crashed(tmp_path):
    run = FakeRun(tmp_path / "run", 30, 10)
    run.segments(0, 0)
    run.attempt(1, 10, 14, recorded=False)
    run_dir = run.write(status="running")  # what SIGKILL leaves: the manifest still says running
    st = status_json(run_dir)
    assert (st["status"], st["state"], st["alive"]) == ("running", "crashed", False)
    assert st["epochs_done"] == 14 and st["segments_done"] == 1 and st["current_segment"] == 1
    assert st["hint"] == f"segtrain resume {run_dir}"
    rep = report_json(run_dir)
    assert rep["segments"][-1]["outcome"] == "crashed" and rep["segments"][-1]["boundary_seconds"] is None
    text = cli.invoke(app, ["status", str(run_dir)]).stdout
    assert "crashed" in text and "14/30" in text and "segtrain resume" in text


# -- trends ------------------------------------------------------------------------------------------

def noisy(values: list[float], amplitude: float) -> list[float]:
    """Deterministic jitter of ±amplitude."""
    return [v + amplitude * math.sin(i * 2.7) for i, v in enumerate(values)]


def test_steady_climb_is_found_with_its_size():
    climb = trends.steady_climb(noisy([1.0 + 0.05 * i for i in range(20)], 0.02), min_ratio=1.1)
    assert climb is not None
    assert climb.start == pytest.approx(1.0, abs=0.05) and climb.end == pytest.approx(1.95, abs=0.05)
    assert climb.tau > 0.8


@pytest.mark.parametrize("values", [
    noisy([1.0] * 30, 0.05),  # flat and noisy
    [1.0] * 10 + [5.0] + [1.0] * 10,  # one slow epoch
    [2.0 - 0.05 * i for i in range(20)],  # speeding up
    [1.0, 1.5, 2.0],  # too short to tell
    [1.0 + 0.001 * i for i in range(20)],  # steady but tiny
])
def test_no_climb_in_noise_spikes_descents_or_short_series(values):
    assert trends.steady_climb(values, min_ratio=1.1) is None


def test_long_series_are_thinned_not_refused():
    assert trends.steady_climb([1.0 + 0.01 * i for i in range(2000)], min_ratio=1.1) is not None


def test_time_climb_leaves_out_the_tracing_epoch():
    assert trends.time_climb([5.0] + [0.2] * 9, segment=0, start_epoch=0) is None
    finding = trends.time_climb([5.0] + [0.2 + 0.02 * i for i in range(9)], segment=2, start_epoch=20)
    assert finding is not None and finding.kind == "time_climb"
    assert (finding.segment, finding.start_epoch, finding.end_epoch) == (2, 21, 30)
    assert "segment 3" in finding.message and "epochs 22–30" in finding.message and "%" in finding.message


def test_memory_climb_needs_megabytes_not_just_a_ratio():
    assert trends.memory_climb([10.0 + 0.5 * i for i in range(10)], 0, 0) is None  # +40%, but 4 MB
    finding = trends.memory_climb([1000.0 + 10 * i for i in range(10)], 0, 0)
    assert finding is not None and finding.kind == "rss_climb" and "MB per epoch" in finding.message
    device = trends.memory_climb([None] + [500.0 + 10 * i for i in range(9)], 1, 10, kind="device")
    assert device is not None and device.kind == "device_climb"
    assert trends.memory_climb([None] * 10, 0, 0) is None


def test_boundary_overhead_leaves_out_the_first_setup():
    first = trends.SegmentCost(boundary_seconds=5.0, setup_seconds=4.8, train_seconds=100.0, retrace_seconds=3.0)
    later = trends.SegmentCost(boundary_seconds=1.0, setup_seconds=0.9, train_seconds=100.0, retrace_seconds=0.5)
    overhead, train = trends.boundary_overhead([first, later, later])
    assert overhead == pytest.approx(0.2 + 2 * 1.5) and train == 300.0


def test_boundary_cost_suggests_a_longer_segment():
    cheap = [trends.SegmentCost(0.5, 0.4, 100.0, 0.0)] * 4
    assert trends.boundary_cost(cheap, segment_length=10) is None
    costly = [trends.SegmentCost(3.0, 2.9, 20.0, 1.0)] * 4
    finding = trends.boundary_cost(costly, segment_length=10, epochs_total=1000)
    assert finding is not None and finding.kind == "boundary_cost"
    assert finding.ratio == pytest.approx((0.1 + 3 * 4.0) / 80.0)
    suggested = int(finding.message.split("--segment ")[1].split()[0])
    assert 10 < suggested <= 1000
    assert trends.boundary_cost(costly[:1], segment_length=10) is None  # no boundary yet


def test_segment_cost_from_a_segments_jsonl_line():
    cost = trends.SegmentCost.from_record({"boundary_seconds": 1.0, "start_seconds": 0.5, "load_seconds": 0.2,
                                           "train_seconds": 9.0, "epoch_seconds": [3.0, 1.0, 1.2, 1.0]})
    assert cost == trends.SegmentCost(1.0, 0.7, 9.0, 2.0)


# -- warnings while training --------------------------------------------------------------------------

def epoch_event(epoch: int, segment: int, seconds: float, rss: float) -> dict:
    return {"event": "epoch", "epoch": epoch, "segment": segment, "seconds": seconds, "rss_mb": rss,
            "device_mb": None, "logs": {"loss": 1.0}}


def test_progress_warns_once_per_segment_when_time_and_memory_climb(caplog):
    progress = RunProgress(total=40, done=0, segments=2, enabled=False)
    with caplog.at_level(logging.WARNING, logger="segtrain"):
        for i in range(20):
            progress.on_event(epoch_event(i, 0, 1.5 if i == 0 else 0.2 + 0.01 * i, 600 + 5 * i))
    progress.close()
    assert sorted(f.kind for f in progress.warnings) == ["rss_climb", "time_climb"]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all("segment 1" in m for m in messages)


def test_progress_is_quiet_on_a_healthy_run_and_warns_about_costly_boundaries(caplog):
    progress = RunProgress(total=40, done=0, segments=4, enabled=False)
    with caplog.at_level(logging.WARNING, logger="segtrain"):
        for segment in range(3):
            seconds = [1.5] + [0.2] * 9
            for i, s in enumerate(seconds):
                progress.on_event(epoch_event(segment * 10 + i, segment, s, 600.0))
            progress.on_segment({"index": segment, "start_epoch": segment * 10, "end_epoch": segment * 10 + 10,
                                 "outcome": "boundary", "epoch_seconds": seconds, "train_seconds": sum(seconds),
                                 "start_seconds": 2.0, "load_seconds": 0.3, "save_seconds": 0.2,
                                 "boundary_seconds": 2.5})
    progress.close()
    assert [f.kind for f in progress.warnings] == ["boundary_cost"]  # once, not once per segment
    assert "--segment" in caplog.records[0].getMessage()


# -- a real run: while it trains, killed with SIGKILL, resumed --------------------------------------

def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _wait_for(condition, proc: subprocess.Popen | None = None, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"segtrain fit exited ({proc.returncode}) before the test could look: "
                        f"{proc.stderr.read().decode()[-3000:]}")
        time.sleep(0.05)
    pytest.fail("timed out waiting for the run")


def test_status_and_report_while_running_after_sigkill_and_after_resume(tmp_path):
    run_dir = tmp_path / "run"
    epochs_log, paths = run_dir / "epochs.jsonl", RunPaths(run_dir)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    fit = [sys.executable, "-m", "segtrain", "fit", str(SCRIPTS / "slow_epochs.py"), "--epochs", "12",
           "--segment", "4", "--run-dir", str(run_dir), "--seed", "0", "--no-progress"]
    proc = subprocess.Popen(fit, env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        mid_segment = lambda: 5 <= _lines(epochs_log) < 12 and _lines(epochs_log) % 4 != 0  # noqa: E731
        _wait_for(mid_segment, proc)
        st = status_json(run_dir)
        assert (st["state"], st["alive"], st["pid"]) == ("running", True, proc.pid)
        assert st["epochs_done"] >= 5 and st["checkpoint"]["epoch"] >= 4 and st["last_epoch"]["rss_mb"] > 0
        rep = report_json(run_dir)
        assert rep["status"] == "running" and rep["alive"] and rep["segments"][-1]["outcome"] in ("running", "boundary")
        assert_consistent(rep, run_dir)

        _wait_for(mid_segment, proc)  # mid-segment again: the kill leaves epochs without a segment line
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        _wait_for(lambda: not is_locked(paths), timeout=30)  # workers die with their supervisor
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    done = _lines(epochs_log)
    st = status_json(run_dir)
    assert (st["status"], st["state"], st["alive"]) == ("running", "crashed", False)
    assert st["epochs_done"] == done and st["checkpoint"]["epoch"] == done // 4 * 4
    assert st["hint"] == f"segtrain resume {run_dir}"
    assert "a resume would re-run" in cli.invoke(app, ["status", str(run_dir)]).stdout
    rep = report_json(run_dir)
    assert rep["segments"][-1]["outcome"] == "crashed" and rep["epochs_done"] == done
    assert_consistent(rep, run_dir)

    resumed = subprocess.run([sys.executable, "-m", "segtrain", "resume", str(run_dir), "--no-progress"], env=env,
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rep = report_json(run_dir)
    assert (rep["status"], rep["epochs_done"], rep["epochs_total"]) == ("finished", 12, 12)
    assert rep["epochs_rerun"] == done - done // 4 * 4
    assert {s["outcome"] for s in rep["segments"]} <= {"boundary", "finished"}
    assert [s["index"] for s in rep["segments"]] == [0, 1, 2]
    assert {s["isolation"] for s in rep["segments"]} == {"process"}
    assert_consistent(rep, run_dir)
    st = status_json(run_dir)
    assert (st["state"], st["segments_done"], st["checkpoint"]["final"]) == ("finished", 3, True)

"""Seeing the slowdown: `segtrain report` (table, JSON, schema, PNG) and `segtrain status`.

Most tests write the run directory a run leaves (manifest.json, epochs.jsonl,
segments.jsonl, checkpoint folders) themselves, in the shapes a real
`segtrain fit` writes, so that leaks, crashes and resumes are exact and each
test takes milliseconds in-process. A live run is a lock this process holds.
One `slow` test runs a real `segtrain fit`, looks at it while it trains, kills
it with SIGKILL, looks again, resumes it, and checks that the fixtures here
write the fields the real run writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import signal
import statistics
import struct
import subprocess
import sys
import textwrap
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import ROOT, SCRIPTS, cli_env, segtrain_cmd, wait_for
from segtrain.cli import app
from segtrain.outcomes import RunStatus, SegmentOutcome
from segtrain.paths import RunPaths, is_locked
from segtrain.runs.paths import RunLock
from segtrain.telemetry.report import Report, SegmentRow
from segtrain.telemetry.schema import JSON_SCHEMA, schema_of
from segtrain.telemetry.trends import Finding, FindingKind
from support.runs import FakeRun

cli = CliRunner()

# -- a small JSON Schema check (the draft 2020-12 keywords that JSON_SCHEMA uses) --------------------

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
PROMISED_SEGMENT = {
    "index",
    "start_epoch",
    "end_epoch",
    "seconds",
    "seconds_per_epoch",
    "slowdown",
    "peak_rss_mb",
    "boundary_seconds",
    "isolation",
    "first_epoch_seconds",
}


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


def status_text(run_dir: Path) -> list[str]:
    result = cli.invoke(app, ["status", str(run_dir)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def table_rows(out: str) -> list[list[str]]:
    """The cells of each row of the report's table (no cell holds a space)."""
    lines = out.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.strip().startswith("─"))
    rows = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def table_header(out: str) -> list[str]:
    """The header's two lines (above the rule; "slow-/down" is in every table), stripped."""
    lines = out.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.strip().startswith("─"))
    return [line.strip() for line in lines[rule - 2 : rule]]


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


# -- fixture runs: the files a run writes, in the shapes a real one writes -----------------------------


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
    run.checkpoint(50)
    run.checkpoint(60, final=True)
    return run.write(stop_reason="finished all 60 epochs")


def healthy_run(root: Path) -> Path:
    """Flat time and memory, cheap boundaries: nothing to warn about."""
    run = FakeRun(root, 40, 20, slope=0.0, rss_slope=0.0, start_seconds=0.05, base=2.0, first=2.5)
    run.segments(0, 1)
    for i, line in enumerate(run.epoch_lines):  # some noise, no trend
        line["seconds"] += 0.1 * ((i * 7) % 3 - 1) if i % 20 else 0.0
    return run.write()


def killed_run(root: Path) -> FakeRun:
    """30 epochs in segments of 10; killed 4 epochs into segment 2, with the manifest still saying running."""
    run = FakeRun(root, 30, 10)
    run.segments(0, 0)
    run.checkpoint(10)
    run.attempt(1, 10, 14, recorded=False)
    run.write(status="running")
    return run


# -- the JSON Schema ---------------------------------------------------------------------------------


def _names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def test_schema_is_the_report_dataclasses_field_by_field():
    assert JSON_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    segment = JSON_SCHEMA["properties"]["segments"]["items"]
    finding = JSON_SCHEMA["properties"]["findings"]["items"]
    for schema, cls in ((JSON_SCHEMA, Report), (segment, SegmentRow), (finding, Finding)):
        assert list(schema["properties"]) == _names(cls)
        assert schema["required"] == _names(cls)  # to_json() always writes every field
    props = JSON_SCHEMA["properties"]
    assert props["status"] == {"type": "string", "enum": [s.value for s in RunStatus]}
    assert props["boundary_overhead"] == {"type": ["number", "null"]}
    assert props["epochs_done"] == {"type": "integer", "minimum": 0}
    assert props["segment_length"] == {"type": ["integer", "null"]}
    assert props["alive"] == {"type": "boolean"}
    assert segment["properties"]["outcome"] == {"type": "string", "enum": [o.value for o in SegmentOutcome]}
    assert segment["properties"]["end_epoch"] == {"type": "integer", "minimum": 1}
    assert segment["properties"]["checkpoint"] == {"type": ["string", "null"]}
    assert segment["properties"]["final_logs"] == {
        "type": "object",
        "additionalProperties": {"type": ["number", "null"]},
    }
    assert finding["properties"]["kind"] == {"type": "string", "enum": [k.value for k in FindingKind]}
    assert finding["properties"]["ratio"] == {"type": ["number", "null"]}


class _Colour(Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class _Inner:
    n: int


@dataclasses.dataclass
class _Every:
    i: int
    f: float
    s: str
    b: bool
    maybe: float | None
    items: list[int]
    table: dict[str, float]
    colour: _Colour
    inner: _Inner
    inners: list[_Inner]
    late: str = "default"


def test_schema_of_maps_each_python_type_to_its_json_type():
    assert schema_of(_Every) == {
        "type": "object",
        "required": ["i", "f", "s", "b", "maybe", "items", "table", "colour", "inner", "inners", "late"],
        "properties": {
            "i": {"type": "integer"},
            "f": {"type": "number"},
            "s": {"type": "string"},
            "b": {"type": "boolean"},
            "maybe": {"type": ["number", "null"]},
            "items": {"type": "array", "items": {"type": "integer"}},
            "table": {"type": "object", "additionalProperties": {"type": "number"}},
            "colour": {"type": "string", "enum": ["red", "blue"]},
            "inner": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}},
            "inners": {
                "type": "array",
                "items": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}},
            },
            "late": {"type": "string"},
        },
    }
    with pytest.raises(TypeError, match="no JSON Schema"):
        schema_of(set[int])


# -- report: JSON ------------------------------------------------------------------------------------


def test_json_report_of_a_resumed_run_takes_the_newest_attempt(tmp_path):
    rep = report_json(leaky_run(tmp_path / "run"))
    assert_consistent(rep, tmp_path / "run")
    assert (rep["status"], rep["epochs_total"], rep["epochs_done"]) == ("finished", 60, 60)
    assert (rep["segment_length"], rep["segments_planned"], rep["isolation"]) == (10, 6, "process")
    assert rep["stop_reason"] == "finished all 60 epochs" and rep["alive"] is False
    assert rep["epochs_rerun"] == 6
    spans = [(s["index"], s["start_epoch"], s["end_epoch"], s["outcome"]) for s in rep["segments"]]
    assert spans == [
        (0, 0, 10, "boundary"),
        (1, 10, 20, "boundary"),
        (2, 20, 30, "boundary"),
        (3, 30, 40, "boundary"),
        (4, 40, 43, "preempted"),
        (4, 43, 50, "boundary"),
        (5, 50, 60, "finished"),
    ]
    assert [s["stop_reason"] for s in rep["segments"]][4] == "SIGTERM"
    first = rep["segments"][0]
    assert first["seconds_per_epoch"] == pytest.approx(0.25)  # median of 0.21 .. 0.29, first epoch left out
    assert first["first_epoch_seconds"] == 1.5
    assert first["retrace_seconds"] == pytest.approx(1.25)
    assert first["peak_rss_mb"] == 645 and first["memory_growth"] == 1.0 and first["last_rss_mb"] == 645
    assert first["peak_device_mb"] == 472 and first["device_growth"] == 1.0
    assert first["samples_per_second"] == pytest.approx(128 / 0.25)
    assert first["checkpoint"] == "ckpt-000010" and first["final_logs"] == {"loss": 0.1, "accuracy": 0.5}
    assert rep["segments"][4]["slowdown"] == pytest.approx(0.215 / 0.25)  # median of 0.21, 0.22
    assert (first["start_seconds"], first["clear_seconds"], first["load_seconds"], first["save_seconds"]) == (
        2.0,
        None,
        0.3,
        0.2,
    )
    assert first["boundary_seconds"] == pytest.approx(2.5)
    # Segmenting cost: the first segment's save, then every later row's boundary (2.5 s), retrace (its first
    # epoch, 1.5 s, over its median: 0.25 s for whole segments, 0.215 and 0.235 s for the two pieces of segment 5)
    # and the rest of its wall time (0.01 s).
    expected = 0.2 + 6 * 2.5 + 4 * (1.5 - 0.25) + (1.5 - 0.215) + (1.5 - 0.235) + 6 * 0.01
    assert rep["overhead_seconds"] == pytest.approx(expected)
    assert rep["boundary_overhead"] == pytest.approx(expected / rep["train_seconds"])


def test_session_isolation_reports_the_clear(tmp_path):
    run = FakeRun(tmp_path / "run", 20, 5, isolation="session")
    run.segments(0, 3)
    rep = report_json(run.write())
    assert_consistent(rep, tmp_path / "run")
    assert {s["isolation"] for s in rep["segments"]} == {"session"}
    assert rep["segments"][0]["start_seconds"] == 2.0 and rep["segments"][0]["clear_seconds"] is None
    assert all(s["clear_seconds"] == 0.4 and s["start_seconds"] is None for s in rep["segments"][1:])
    out = cli.invoke(app, ["report", str(tmp_path / "run")], env={"COLUMNS": "160"}).stdout
    assert "start/" in table_header(out)[0] and "clear" in table_header(out)[1]
    # seg, epochs, outcome, time, s/epoch, 1st, slowdown, RSS, growth, boundary, start/clear, load, save, loss
    assert [row[9:13] for row in table_rows(out)] == [["2.50", "2.00", "0.30", "0.20"]] + [
        ["0.90", "0.40", "0.30", "0.20"]
    ] * 3


def test_findings_say_where_and_by_how_much(tmp_path):
    rep = report_json(leaky_run(tmp_path / "run"))
    kinds = {(f["kind"], f["segment"]) for f in rep["findings"]}
    for segment in (0, 1, 2, 3, 5):  # whole segments; the 3-epoch piece of segment 5 is too short to judge
        assert ("time_climb", segment) in kinds and ("rss_climb", segment) in kinds
        assert ("device_climb", segment) in kinds
    assert {f["start_epoch"] for f in rep["findings"] if f["segment"] == 4} == {44}  # the 7 epochs after the resume
    time_climb = next(f for f in rep["findings"] if f["kind"] == "time_climb" and f["segment"] == 1)
    assert (time_climb["start_epoch"], time_climb["end_epoch"]) == (11, 20)
    assert time_climb["ratio"] == pytest.approx(0.29 / 0.21, rel=0.01)
    assert "segment 2" in time_climb["message"] and "epochs 12–20" in time_climb["message"]
    boundary = [f for f in rep["findings"] if f["kind"] == "boundary_cost"]
    assert len(boundary) == 1 and "--segment" in boundary[0]["message"]
    assert boundary[0]["segment"] is None and boundary[0]["ratio"] == pytest.approx(rep["boundary_overhead"])
    assert report_json(healthy_run(tmp_path / "healthy"))["findings"] == []


def test_nan_loss_is_null_in_json(tmp_path):
    run = FakeRun(tmp_path / "run", 20, 10)
    run.segments(0, 0)
    run.attempt(1, 10, 13, outcome="nan", stop_reason="loss became nan in epoch 13", loss=math.nan)
    rep = report_json(run.write(status="failed", error="loss became nan in epoch 13. The newest ..."))
    assert rep["segments"][-1]["final_logs"]["loss"] is None
    assert rep["segments"][-1]["outcome"] == "nan"
    assert rep["status"] == "failed" and rep["stop_reason"] == "loss became nan in epoch 13. The newest ..."


def test_a_stop_reason_left_from_an_earlier_invocation_is_not_shown_for_a_run_going_on(tmp_path):
    run = killed_run(tmp_path / "run")
    run.write(status="running", stop_reason="stopped by SIGTERM; resumable from ckpt-000010")
    assert report_json(run.root)["stop_reason"] is None
    run.write(status="interrupted", stop_reason="stopped by SIGTERM; resumable from ckpt-000010")
    assert report_json(run.root)["stop_reason"] == "stopped by SIGTERM; resumable from ckpt-000010"


def test_a_killed_attempt_is_crashed_and_a_live_one_running(tmp_path):
    run = killed_run(tmp_path / "run")
    rep = report_json(run.root)
    last = rep["segments"][-1]
    assert (rep["alive"], last["outcome"], last["start_epoch"], last["end_epoch"]) == (False, "crashed", 10, 14)
    assert all(last[k] is None for k in ("boundary_seconds", "start_seconds", "load_seconds", "save_seconds"))
    assert last["seconds"] == last["train_seconds"] == pytest.approx(1.5 + 0.21 + 0.22 + 0.23)
    assert last["final_logs"] == {"loss": 1 / 14, "accuracy": 0.5}  # from its newest epoch
    with RunLock(RunPaths(run.root)):  # a live process holds the run: its newest attempt is training
        rep = report_json(run.root)
    assert (rep["alive"], rep["segments"][-1]["outcome"], rep["status"]) == (True, "running", "running")
    assert rep["segments"][0]["outcome"] == "boundary"


# -- report: table -----------------------------------------------------------------------------------


def test_table_has_a_row_per_segment_and_a_summary(tmp_path):
    result = cli.invoke(app, ["report", str(leaky_run(tmp_path / "run"))], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.splitlines()[0].rstrip() == f"segtrain run {tmp_path / 'run'}"
    top, bottom = (line.split() for line in table_header(out))
    assert top == ["1st", "slow-", "peak", "RSS", "device", "device", "bound-"]
    assert bottom == [
        "seg",
        "epochs",
        "outcome",
        "time",
        "s",
        "s/epoch",
        "epoch",
        "s",
        "down",
        "RSS",
        "MB",
        "growth",
        "MB",
        "growth",
        "ary",
        "s",
        "start",
        "load",
        "save",
        "loss",
    ]
    rows = table_rows(out)
    assert [row[:3] for row in rows] == [
        ["1", "1–10", "boundary"],
        ["2", "11–20", "boundary"],
        ["3", "21–30", "boundary"],
        ["4", "31–40", "boundary"],
        ["5", "41–43", "preempted"],
        ["5", "44–50", "boundary"],
        ["6", "51–60", "finished"],
    ]
    # time, s/epoch, 1st epoch, slowdown, peak RSS, growth, device, growth, boundary, start, load, save, loss
    assert rows[0][3:] == [
        "6.3",
        "0.25",
        "1.50",
        "×1.00",
        "645",
        "×1.00",
        "472",
        "×1.00",
        "2.50",
        "2.00",
        "0.30",
        "0.20",
        "0.1",
    ]
    assert rows[4][3:] == [
        "4.5",
        "0.22",
        "1.50",
        "×0.86",
        "610",
        "×0.95",
        "420",
        "×0.89",
        "2.50",
        "2.00",
        "0.30",
        "0.20",
        "0.02326",
    ]
    lines = out.splitlines()
    assert "  segment 5 preempted: SIGTERM" in lines
    summary = next(line for line in lines if line.startswith("finished:"))
    assert summary.startswith("finished: 60/60 epochs in 7 segments (process isolation); ")
    assert "6 epochs re-run after crashes" in out
    warnings = [line for line in lines if line.startswith("warning:")]
    assert [w.split(" climbed")[0] for w in warnings[:3]] == [
        "warning: Seconds per epoch",
        "warning: RSS",
        "warning: Device memory",
    ]
    text = out.replace("\n", " ")  # one warning per kind, naming the other segments that show it
    assert "a shorter --segment resets it sooner. Segments 2, 3, 4, 5, 6 too (6 of the run's segments)." in text
    assert "a shorter --segment bounds it. Segments 2, 3, 4, 6 too (5 of the run's segments)." in text
    assert any(w.startswith("warning: Boundaries cost") for w in warnings)


def test_summary_line_says_what_segmenting_cost(tmp_path):
    out = cli.invoke(app, ["report", str(healthy_run(tmp_path / "run"))], env={"COLUMNS": "400"}).stdout
    summary = next(line for line in out.splitlines() if line.startswith("finished:"))
    rep = report_json(tmp_path / "run")
    assert summary == (
        f"finished: 40/40 epochs in 2 segments (process isolation); {rep['seconds']:.1f} s: "
        f"{rep['train_seconds']:.1f} s training, {rep['boundary_seconds']:.1f} s at boundaries; segmenting cost "
        f"{rep['overhead_seconds']:.1f} s ({rep['boundary_overhead']:.1%} of training: boundaries "
        f"{rep['overhead_boundary_seconds']:.1f} s, re-traces {rep['overhead_retrace_seconds']:.1f} s, other "
        f"{rep['overhead_other_seconds']:.1f} s); slowdown last "
        f"×{rep['segments'][1]['slowdown']:.2f}, worst ×1.00 (segment 1); peak RSS 600 MB, growth last ×1.00"
    )
    assert "warning:" not in out


def test_narrow_terminal_drops_the_boundary_split_not_the_essentials(tmp_path):
    out = cli.invoke(app, ["report", str(leaky_run(tmp_path / "run"))], env={"COLUMNS": "80"}).stdout
    table = out.split("finished:")[0]
    assert max(len(line) for line in table.splitlines()) <= 80
    top, bottom = (line.split() for line in table_header(out))
    assert top == ["slow-", "peak", "bound-"]  # the boundary split, growths, 1st epoch and device are dropped
    assert bottom == ["seg", "epochs", "outcome", "time", "s", "s/epoch", "down", "RSS", "MB", "ary", "s", "loss"]
    assert table_rows(out)[0] == ["1", "1–10", "boundary", "6.3", "0.25", "×1.00", "645", "2.50", "0.1"]


def test_table_of_a_dead_run_says_its_process_is_gone(tmp_path):
    run = killed_run(tmp_path / "run")
    out = cli.invoke(app, ["report", str(run.root)], env={"COLUMNS": "200"}).stdout
    rows = table_rows(out)
    assert rows[-1][:3] == ["2", "11–14", "crashed"]
    assert rows[-1][-5:-1] == ["–", "–", "–", "–"]  # boundary, start, load, save: not recorded
    summary = next(line for line in out.splitlines() if line.startswith("running"))
    assert summary.startswith("running (its process is gone: `segtrain resume` goes on): 14/30 epochs in 2 segments")
    with RunLock(RunPaths(run.root)):
        out = cli.invoke(app, ["report", str(run.root)], env={"COLUMNS": "200"}).stdout
    assert table_rows(out)[-1][:3] == ["2", "11–14", "running"]
    assert any(line.startswith("running: 14/30 epochs in 2 segments") for line in out.splitlines())


def test_report_of_a_new_run_says_nothing_trained_yet(tmp_path):
    FakeRun(tmp_path / "run", 10, 5).write(status="new")
    result = cli.invoke(app, ["report", str(tmp_path / "run")])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"{tmp_path / 'run'}: new, no epoch finished yet (0/10 epochs)."
    rep = report_json(tmp_path / "run")
    assert (rep["segments"], rep["findings"], rep["epochs_done"], rep["boundary_overhead"]) == ([], [], 0, None)


@pytest.mark.parametrize("command", ["report", "status"])
def test_not_a_run_dir_is_a_clear_error(tmp_path, command):
    (tmp_path / "a-file").write_text("not a run")
    (tmp_path / "torn" / "manifest.json").parent.mkdir()
    (tmp_path / "torn" / "manifest.json").write_text('{"config": {"epo')
    expected = {
        tmp_path: "is not a segtrain run directory (no manifest.json)",
        tmp_path / "missing": "does not exist",
        tmp_path / "a-file": "is a file, not a run directory",
        tmp_path / "torn": "cannot be read",
    }
    for target, says in expected.items():
        result = cli.invoke(app, [command, str(target)])
        assert result.exit_code == 2, (target, result.output)
        assert says in " ".join(result.stderr.split()), (target, result.stderr)
        assert result.stdout == ""


def test_a_status_or_outcome_that_segtrain_does_not_write_is_bad_input(tmp_path):
    run = killed_run(tmp_path / "run")
    run.write(status="paused")
    result = cli.invoke(app, ["report", str(run.root)])
    assert result.exit_code == 2 and "manifest.json records an unknown status 'paused'" in result.stderr
    run.segment_lines[0]["outcome"] = "exploded"
    run.write(status="running")
    result = cli.invoke(app, ["status", str(run.root)])
    assert result.exit_code == 2 and "segments.jsonl records an unknown outcome 'exploded' for segment 0" in " ".join(
        result.stderr.split()
    )


def test_to_json_is_plain_json_and_what_the_cli_prints(tmp_path):
    from segtrain.telemetry.report import build

    run_dir = leaky_run(tmp_path / "run")
    report = build(run_dir)
    assert report.status is RunStatus.FINISHED and report.segments[4].outcome is SegmentOutcome.PREEMPTED
    data = report.to_json()
    assert type(data["status"]) is str and type(data["segments"][4]["outcome"]) is str
    assert type(data["findings"][0]["kind"]) is str
    assert data == report_json(run_dir)


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
    assert table_rows(result.stdout)[0][:3] == ["1", "1–10", "boundary"]  # the table is printed too


def test_plot_draws_the_run_in_panels(tmp_path):
    pytest.importorskip("matplotlib")
    from segtrain.telemetry import plot
    from segtrain.telemetry.logs import load
    from segtrain.telemetry.report import build_from

    logs = load(killed_run(tmp_path / "run").root)
    fig = plot.figure(logs, build_from(logs))
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == ["seconds / epoch", "RSS (MB)", "boundary (s)"]  # no device panel
    assert fig.get_suptitle().startswith("run: running (no live process), 14/30 epochs, 2 segments of 10")
    labels = [t.get_text() for t in axes[0].texts]
    assert "S1" in labels and "S2 crashed" in labels and "×1.00" in labels
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in axes[2].containers}
    assert bars["start or clear"] == pytest.approx([2.0, 0.0]) and bars["load"] == pytest.approx([0.3, 0.0])
    assert bars["save"] == pytest.approx([0.2, 0.0])  # the crashed attempt recorded no boundary
    assert bars["retrace (1st epoch − median)"] == pytest.approx([1.25, 1.5 - 0.22])


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
    run_dir = leaky_run(tmp_path / "run")
    st = status_json(run_dir)
    assert (st["status"], st["state"], st["alive"], st["pid"]) == ("finished", "finished", False, 4242)
    assert (st["epochs_done"], st["epochs_total"]) == (60, 60)
    assert (st["segments_done"], st["segments_total"], st["current_segment"]) == (6, 6, 5)
    assert st["checkpoint"] == {"name": "ckpt-000060-end", "epoch": 60, "batch": 0, "final": True}
    last = st["last_epoch"]
    assert (last["epoch"], last["segment"], last["rss_mb"], last["device_mb"], last["pid"]) == (59, 5, 645, 372, 1008)
    assert 0 <= last["age_seconds"] < 60
    assert st["slowdown"] == pytest.approx(1.0)  # the last segment leaks like the first
    assert (st["stop_reason"], st["hint"]) == ("finished all 60 epochs", None)
    lines = status_text(run_dir)
    assert lines[0] == f"{run_dir}: finished (no live process, last pid 4242)"
    assert lines[1:4] == [
        "  epochs    60/60 (100%)",
        "  segments  6/6 done",
        "  checkpoint ckpt-000060-end (after epoch 60, final)",
    ]
    assert re.fullmatch(
        r"  last epoch 60: 0\.29 s, segment slowdown ×1\.00, RSS 645 MB, device 372 MB, "
        r"logged \d+ s ago",
        lines[4],
    )
    assert lines[5:] == ["  reason    finished all 60 epochs"]


def test_status_of_a_killed_run_says_crashed(tmp_path):
    run_dir = killed_run(tmp_path / "run").root  # what SIGKILL leaves: the manifest still says running
    st = status_json(run_dir)
    assert (st["status"], st["state"], st["alive"], st["pid"]) == ("running", "crashed", False, 4242)
    assert st["epochs_done"] == 14 and st["segments_done"] == 1 and st["current_segment"] == 1
    assert st["checkpoint"] == {"name": "ckpt-000010", "epoch": 10, "batch": 0, "final": False}
    assert st["slowdown"] == pytest.approx(0.22 / 0.25)
    assert st["stop_reason"] is None and st["hint"] == f"segtrain resume {run_dir}"
    lines = status_text(run_dir)
    assert lines[:4] == [
        f"{run_dir}: crashed (no live process, last pid 4242, recorded as running)",
        "  epochs    14/30 (47%)",
        "  segments  1/3 done",
        "  checkpoint ckpt-000010 (after epoch 10); a resume would re-run 4 epochs",
    ]
    assert lines[4].startswith("  last epoch 14: 0.23 s, segment slowdown ×0.88, RSS 615 MB, logged ")
    assert lines[5:] == [f"  go on     segtrain resume {run_dir}"]


def test_status_of_a_live_run_names_its_process(tmp_path):
    run_dir = killed_run(tmp_path / "run").root
    with RunLock(RunPaths(run_dir)):
        st = status_json(run_dir)
        lines = status_text(run_dir)
    assert (st["status"], st["state"], st["alive"], st["pid"], st["hint"]) == (
        "running",
        "running",
        True,
        os.getpid(),
        None,
    )
    assert lines[0] == f"{run_dir}: running (pid {os.getpid()} alive)"
    assert lines[2] == "  segments  1/3 done, in segment 2"
    assert not any(line.startswith("  go on") for line in lines)


def test_status_skips_a_damaged_checkpoint_and_counts_a_mid_epoch_one(tmp_path):
    run = FakeRun(tmp_path / "run", 60, 10)
    run.segments(0, 3)
    run.attempt(4, 40, 43, outcome="preempted", stop_reason="SIGTERM")
    run.checkpoint(30)
    run.checkpoint(40, damaged=True)  # torn: its model file no longer matches its checksum
    run.write(status="interrupted", stop_reason="stopped by SIGTERM; resumable from ckpt-000043.000002")
    st = status_json(run.root)
    assert st["checkpoint"] == {"name": "ckpt-000030", "epoch": 30, "batch": 0, "final": False}
    run.checkpoint(43, batch=2)
    st = status_json(run.root)
    assert st["checkpoint"] == {"name": "ckpt-000043.000002", "epoch": 43, "batch": 2, "final": False}
    assert (st["state"], st["segments_done"], st["hint"]) == ("interrupted", 4, f"segtrain resume {run.root}")
    lines = status_text(run.root)
    assert lines[3] == "  checkpoint ckpt-000043.000002 (after epoch 43, batch 2 of epoch 44)"
    assert lines[-2:] == [
        "  reason    stopped by SIGTERM; resumable from ckpt-000043.000002",
        f"  go on     segtrain resume {run.root}",
    ]


def test_status_of_a_run_without_a_checkpoint_or_an_epoch(tmp_path):
    run_dir = FakeRun(tmp_path / "run", 10, 5).write(status="new")
    st = status_json(run_dir)
    assert (st["state"], st["epochs_done"], st["checkpoint"], st["last_epoch"], st["slowdown"]) == (
        "crashed",
        0,
        None,
        None,
        None,
    )
    assert status_text(run_dir)[1:4] == [
        "  epochs    0/10 (0%)",
        "  segments  0/2 done",
        "  checkpoint none complete yet",
    ]


# -- report and status stay light: no deep-learning framework is imported ----------------------------


def test_report_and_status_import_no_framework(tmp_path):
    run_dir = leaky_run(tmp_path / "run")
    code = textwrap.dedent(f"""
        import sys
        from typer.testing import CliRunner
        from segtrain.cli import app

        runner = CliRunner()
        for args in (["report"], ["report", "--json"], ["status"], ["status", "--json"]):
            result = runner.invoke(app, [args[0], {str(run_dir)!r}, *args[1:]])
            assert result.exit_code == 0, result.output
        print(sorted(m for m in ("tensorflow", "keras", "jax", "torch") if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "[]", "segtrain report/status imported a framework"


# -- a real run: while it trains, killed with SIGKILL, resumed --------------------------------------


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def assert_fixtures_write_what_a_real_run_writes(run_dir: Path, tmp_path: Path) -> None:
    """Every field FakeRun writes, a real run (process isolation) writes too, under the same name."""
    fake = FakeRun(tmp_path / "fake", 4, 2)
    fake.segments(0, 1)
    fake.checkpoint(4, final=True)
    fake.write()
    for log in ("epochs.jsonl", "segments.jsonl"):
        real_keys = {k for line in (run_dir / log).read_text().splitlines() for k in json.loads(line)}
        fake_keys = {k for line in (fake.root / log).read_text().splitlines() for k in json.loads(line)}
        assert fake_keys <= real_keys, f"{log}: the fixture writes {sorted(fake_keys - real_keys)}, a run does not"
    real, mine = (
        json.loads((run_dir / "manifest.json").read_text()),
        json.loads((fake.root / "manifest.json").read_text()),
    )
    assert mine.keys() <= real.keys() and mine["config"].keys() <= real["config"].keys()
    final = json.loads(next(run_dir.glob("ckpt-*-end")).joinpath("state.json").read_text())
    assert json.loads((fake.root / "ckpt-000004-end" / "state.json").read_text()).keys() <= final.keys()


@pytest.mark.slow
def test_status_and_report_while_running_after_sigkill_and_after_resume(tmp_path):
    run_dir = tmp_path / "run"
    epochs_log, paths = run_dir / "epochs.jsonl", RunPaths(run_dir)
    env = cli_env()
    fit = segtrain_cmd(
        "fit",
        SCRIPTS / "slow_epochs.py",
        "--epochs",
        "12",
        "--segment",
        "4",
        "--run-dir",
        run_dir,
        "--seed",
        "0",
        "--no-progress",
    )
    proc = subprocess.Popen(
        fit, env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        mid_segment = lambda: 5 <= _lines(epochs_log) < 12 and _lines(epochs_log) % 4 != 0  # noqa: E731
        wait_for(mid_segment, "an epoch mid-segment", proc, timeout=150, interval=0.05)
        st = status_json(run_dir)
        assert (st["state"], st["alive"], st["pid"]) == ("running", True, proc.pid)
        assert st["epochs_done"] >= 5 and st["checkpoint"]["epoch"] >= 4 and st["last_epoch"]["rss_mb"] > 0
        rep = report_json(run_dir)
        assert rep["status"] == "running" and rep["alive"] and rep["segments"][-1]["outcome"] in ("running", "boundary")
        assert_consistent(rep, run_dir)

        wait_for(
            mid_segment, "an epoch mid-segment", proc, timeout=150, interval=0.05
        )  # mid-segment again: the kill leaves epochs without a segment line
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        wait_for(
            lambda: not is_locked(paths), "the run's lock released", timeout=30
        )  # workers die with their supervisor
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

    resumed = subprocess.run(
        segtrain_cmd("resume", run_dir, "--no-progress"), env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
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
    assert_fixtures_write_what_a_real_run_writes(run_dir, tmp_path)

"""An honest cost: what the pre-started worker costs, measured, in the figures, the report and its table.

The figures are pure functions (segtrain.telemetry.figures); the report is built
from fixture run directories in the shapes a real run writes (tests/support/runs.py,
with the spare's fields a real process-isolated run adds; test_tensorboard.py's
slow test checks a real run writes them); the meter reads a real child's CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_report import table_header, table_rows, validate
from typer.testing import CliRunner

from segtrain.cli import app
from segtrain.telemetry import figures
from segtrain.telemetry.figures import BoundaryCost, SegmentCost, SegmentingCost
from segtrain.telemetry.probes import CpuMeter, cpu_seconds
from segtrain.telemetry.report import build
from segtrain.telemetry.schema import JSON_SCHEMA
from support.runs import FakeRun

cli = CliRunner()

# -- the figures ---------------------------------------------------------------------------------------


def test_a_spare_is_busy_where_it_used_a_share_of_the_epoch_in_cpu():
    assert not figures.spare_busy(1.0, 0.0)  # a spare that waits for its turn uses none
    assert not figures.spare_busy(1.0, 0.01)  # one tick of the kernel's accounting is noise
    assert figures.spare_busy(1.0, 0.02)
    assert not figures.spare_busy(10.0, 0.1)  # 1% of a long epoch
    assert figures.spare_busy(10.0, 0.2)


def test_the_clean_pace_is_the_segments_own_where_it_has_enough_clean_epochs():
    seconds = [2.0, 1.5, 1.4, 1.0, 1.1, 0.9, 1.0]
    spare = [1.0, 0.5, 0.4, 0.0, 0.0, 0.0, 0.0]
    assert figures.clean_seconds(seconds, spare) == [1.0, 1.1, 0.9, 1.0]  # the first (tracing) left out
    assert figures.clean_pace(seconds, spare, run_clean=[5.0]) == pytest.approx(1.0)
    short = [2.0, 1.5, 1.4, 1.2]
    assert figures.clean_pace(short, [1.0, 0.5, 0.4, 0.0], run_clean=[1.0, 1.1, 0.9]) == pytest.approx(1.0)
    assert figures.clean_pace(short, [1.0, 0.5, 0.4, 0.0]) == pytest.approx(1.2)  # the few it has, alone
    assert figures.clean_pace(short, [1.0] * 4) is None  # no clean epoch anywhere
    assert figures.clean_pace(short, None) == pytest.approx((1.5 + 1.4 + 1.2) / 3)  # every epoch but the first
    skewed = [2.0, 1.0, 1.0, 1.0, 1.6]  # a slow epoch now and then: the pace is their mean, which sums hold
    assert figures.clean_pace(skewed, [0.0] * 5) == pytest.approx(1.15)


def test_time_lost_beside_a_spare_counts_the_busy_epochs_above_the_clean_pace():
    seconds = [2.0, 1.5, 1.4, 1.0, 1.0, 1.0, 1.0]
    spare = [1.0, 0.5, 0.4, 0.0, 0.0, 0.0, 0.0]
    assert figures.spare_busy_epochs(seconds, spare) == 3
    pace = figures.clean_pace(seconds, spare)
    assert figures.spare_lost_seconds(seconds, spare, pace) == pytest.approx(0.5 + 0.4)
    assert figures.spare_lost_seconds(seconds, [0.0] * 7, pace) == 0.0
    assert figures.spare_lost_seconds(seconds, None, pace) == 0.0
    assert figures.spare_lost_seconds(seconds, spare, None) is None  # busy, but nothing to hold it against
    faster = [2.0, 0.9, 0.9, 1.0, 1.0, 1.0, 1.0]  # noise: busy epochs no slower, never a negative cost
    assert figures.spare_lost_seconds(faster, spare, 1.0) == 0.0


def test_the_first_epoch_above_the_typical_one_is_the_retrace_not_counted_twice():
    # Every epoch but the last ran beside the spare, so the typical epoch (1.5 s) is a slowed one: the
    # first epoch's 2.0 s above the clean pace are 1.5 s of re-trace and 0.5 s lost beside the spare.
    seconds = [3.0, 1.5, 1.5, 1.5, 1.0]
    spare = [1.0, 1.0, 1.0, 1.0, 0.0]
    pace = figures.clean_pace(seconds, spare, run_clean=[1.0, 1.0, 1.0])
    retrace = figures.retrace_seconds(seconds)
    lost = figures.spare_lost_seconds(seconds, spare, pace)
    assert (pace, retrace, lost) == (1.0, 1.5, 2.0)
    assert retrace + lost == pytest.approx(sum(seconds) - len(seconds) * pace)


def test_segmenting_cost_leaves_out_only_what_one_segment_pays_too():
    start = BoundaryCost(start_seconds=5.0, load_seconds=0.1, save_seconds=0.2)
    boundary = BoundaryCost(start_seconds=0.05, load_seconds=0.1, save_seconds=0.2)
    first = SegmentCost(start, 10.0, 1.0, 0.7, 0.0, 3, 0.1)
    later = SegmentCost(boundary, 10.0, 0.4, 0.3, 4.0, 2, 0.1)
    last = SegmentCost(boundary, 10.0, 0.4, 0.0, 4.0, 0, 0.1)
    cost = SegmentingCost.of([first, later, last])
    assert cost.boundaries_seconds == pytest.approx(0.2 + 2 * 0.35)  # the first save, every later boundary
    assert cost.retrace_seconds == pytest.approx(0.8)  # the first segment's trace is every run's
    assert cost.other_seconds == pytest.approx(0.2)  # so is the rest of its wall time
    assert cost.spare_lost_seconds == pytest.approx(1.0)  # the first segment's spare is segmenting's
    assert cost.seconds == pytest.approx(0.9 + 0.8 + 0.2 + 1.0)
    assert (cost.spare_busy_epochs, cost.prestart_cpu_seconds) == (5, 8.0)  # CPU apart, not in the wall seconds
    assert cost.fraction == pytest.approx(cost.seconds / 30.0)
    assert SegmentingCost.of([]).fraction is None


# -- measuring: the spare's CPU -------------------------------------------------------------------------


def test_cpu_meter_reads_another_process_and_stops_counting_when_it_is_gone():
    burn = (
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
        "print('burnt', flush=True)\ninput()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        meter = CpuMeter(child.pid)
        assert child.stdout is not None and child.stdout.readline() == b"burnt\n"  # it has stopped burning
        meter.mark()
        time.sleep(0.05)
        meter.mark()  # it waits for input: idle
    finally:
        child.communicate(b"\n", timeout=20)
    meter.mark()  # reaped: gone
    assert meter.used[0] >= 0.25 and meter.used[1] < 0.025 and meter.used[2] == 0.0  # idle: 2 clock ticks at most
    assert cpu_seconds(child.pid) is None


# -- the report ------------------------------------------------------------------------------------------


def spare_run(root: Path) -> Path:
    """30 epochs in segments of 10, flat at 0.2 s; in segments 1 and 2 the next worker starts beside the first
    four epochs and slows epochs 2-4 by 0.1 s each. Segments 2 and 3 were pre-started (4 CPU-s each)."""
    run = FakeRun(root, 30, 10, slope=0.0, rss_slope=0.0, base=0.2, first=1.5)
    run.segments(0, 2)
    for line in run.segment_lines:
        if line["index"] < 2:
            line["spare_cpu_seconds"] = [0.3] * 4 + [0.0] * 6
            line["epoch_seconds"] = [s + (0.1 if 1 <= i <= 3 else 0.0) for i, s in enumerate(line["epoch_seconds"])]
        else:
            line["spare_cpu_seconds"] = None  # the last segment has no successor
        line["prestart_cpu_seconds"] = 4.0 if line["index"] else None
    for epoch in run.epoch_lines:
        epoch["seconds"] += 0.1 if epoch["epoch"] < 20 and 1 <= epoch["epoch"] % 10 <= 3 else 0.0
    run.checkpoint(30, final=True)
    return run.write()


def test_report_counts_the_time_lost_beside_the_spare_and_its_cpu(tmp_path):
    result = cli.invoke(app, ["report", str(spare_run(tmp_path / "run")), "--json"])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)
    validate(rep, JSON_SCHEMA)
    rows = rep["segments"]
    assert [r["spare_busy_epochs"] for r in rows] == [4, 4, None]
    assert [r["spare_lost_seconds"] for r in rows] == [pytest.approx(0.3), pytest.approx(0.3), None]
    assert [r["prestart_cpu_seconds"] for r in rows] == [None, 4.0, 4.0]
    assert rep["overhead_spare_seconds"] == pytest.approx(0.6)
    assert (rep["spare_busy_epochs"], rep["prestart_cpu_seconds"]) == (8, 8.0)
    # The first segment's save, two boundaries of 2.0 + 0.3 + 0.2 s, two re-traces of 1.5 - 0.2 s.
    assert rep["overhead_boundary_seconds"] == pytest.approx(0.2 + 2 * 2.5)
    assert rep["overhead_retrace_seconds"] == pytest.approx(2 * 1.3)
    assert rep["overhead_other_seconds"] == pytest.approx(2 * 0.01)  # each segment's wall time outside both
    parts = sum(rep[f"overhead_{part}_seconds"] for part in ("boundary", "retrace", "other", "spare"))
    assert rep["overhead_seconds"] == pytest.approx(parts)
    assert rep["boundary_overhead"] == pytest.approx(parts / rep["train_seconds"])


def test_the_rest_of_a_segments_wall_time_is_what_neither_boundary_nor_training_holds():
    boundary = BoundaryCost(start_seconds=0.5, load_seconds=0.2, save_seconds=0.3)
    assert figures.other_seconds(11.1, 10.0, boundary) == pytest.approx(0.1)
    assert figures.other_seconds(None, 10.0, boundary) == 0.0  # not recorded: running or crashed
    assert figures.other_seconds(10.5, 10.0, boundary) == 0.0  # never negative


def test_a_run_that_recorded_no_spare_reads_as_before(tmp_path):
    run = FakeRun(tmp_path / "run", 20, 10)
    run.segments(0, 1)
    report = build(run.write())
    assert [(r.prestart_cpu_seconds, r.spare_busy_epochs, r.spare_lost_seconds) for r in report.segments] == [
        (None, None, None)
    ] * 2
    assert (report.overhead_spare_seconds, report.spare_busy_epochs, report.prestart_cpu_seconds) == (0.0, 0, 0.0)


def test_table_and_summary_show_the_spare(tmp_path):
    out = cli.invoke(app, ["report", str(spare_run(tmp_path / "run"))], env={"COLUMNS": "250"}).stdout
    top, bottom = (line.split() for line in table_header(out))
    assert top[-2:] == ["prestart", "beside"] and bottom[-5:] == ["CPU", "s", "spare", "s", "loss"]
    assert [row[-3:-1] for row in table_rows(out)] == [["–", "0.30/4"], ["4.0", "0.30/4"], ["4.0", "–"]]
    summary = " ".join(out.split("finished: ")[1].split())
    assert "segmenting cost" in summary and (
        "boundaries 5.2 s, re-traces 2.6 s, other 0.0 s, 8 epochs beside a busy pre-started worker 0.6 s; "
        "the pre-started workers used 8.0 CPU-s)" in summary
    )

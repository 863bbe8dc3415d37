"""The figures derived from a run's timings, the trend findings, and the live warnings of the progress bar.

All pure and in-process: lists of numbers in, figures and findings out.
"""

from __future__ import annotations

import logging
import math

import pytest

from segtrain.telemetry import figures, trends
from segtrain.telemetry.figures import BoundaryCost
from segtrain.telemetry.progress import RunProgress
from segtrain.telemetry.trends import FindingKind, SegmentCost

# -- figures -----------------------------------------------------------------------------------------


def test_typical_seconds_leaves_out_the_tracing_epoch():
    assert figures.typical_seconds([5.0, 1.0, 3.0, 2.0]) == 2.0
    assert figures.typical_seconds([5.0]) == 5.0  # a segment of one epoch has nothing else
    assert figures.typical_seconds([]) == 0.0


def test_retrace_is_the_first_epochs_excess():
    assert figures.retrace_seconds([5.0, 1.0, 3.0, 2.0]) == 3.0
    assert figures.retrace_seconds([1.0, 2.0, 2.0]) == 0.0  # never negative
    assert figures.retrace_seconds([5.0]) == 0.0


def test_slowdown_and_ratio():
    assert figures.slowdown(0.3, 0.25) == pytest.approx(1.2)
    assert figures.slowdown(0.3, None) == 1.0 and figures.slowdown(0.3, 0.0) == 1.0
    assert figures.ratio(660.0, 600.0) == pytest.approx(1.1)
    assert figures.ratio(None, 600.0) is None and figures.ratio(660.0, None) is None


def test_boundary_cost_from_a_segments_jsonl_line():
    cost = BoundaryCost.from_record(
        {"start_seconds": 2.0, "load_seconds": 0.25, "save_seconds": 0.5, "clear_seconds": None}
    )
    assert cost == BoundaryCost(2.0, 0.0, 0.25, 0.5)
    assert (cost.start_or_clear_seconds, cost.setup_seconds, cost.total) == (2.0, 2.25, 2.75)
    session = BoundaryCost.from_record({"clear_seconds": 0.5, "load_seconds": 0.25})
    assert (session.start_or_clear_seconds, session.setup_seconds, session.total) == (0.5, 0.75, 0.75)


# -- trends ------------------------------------------------------------------------------------------


def noisy(values: list[float], amplitude: float) -> list[float]:
    """Deterministic jitter of ±amplitude."""
    return [v + amplitude * math.sin(i * 2.7) for i, v in enumerate(values)]


def test_steady_climb_is_found_with_its_size():
    climb = trends.steady_climb(noisy([1.0 + 0.05 * i for i in range(20)], 0.02), min_ratio=1.1)
    assert climb is not None
    assert climb.start == pytest.approx(1.0, abs=0.05) and climb.end == pytest.approx(1.95, abs=0.05)
    assert climb.tau > 0.8


@pytest.mark.parametrize(
    "values",
    [
        noisy([1.0] * 30, 0.05),  # flat and noisy
        [1.0] * 10 + [5.0] + [1.0] * 10,  # one slow epoch
        [2.0 - 0.05 * i for i in range(20)],  # speeding up
        [1.0, 1.5, 2.0],  # too short to tell
        [1.0 + 0.001 * i for i in range(20)],  # steady but tiny
    ],
)
def test_no_climb_in_noise_spikes_descents_or_short_series(values):
    assert trends.steady_climb(values, min_ratio=1.1) is None


def test_long_series_are_thinned_not_refused():
    assert trends.steady_climb([1.0 + 0.01 * i for i in range(2000)], min_ratio=1.1) is not None


def test_time_climb_leaves_out_the_tracing_epoch():
    assert trends.time_climb([5.0] + [0.2] * 9, segment=0, start_epoch=0) is None
    finding = trends.time_climb([5.0] + [0.2 + 0.02 * i for i in range(9)], segment=2, start_epoch=20)
    assert finding is not None and finding.kind is FindingKind.TIME_CLIMB
    assert (finding.segment, finding.start_epoch, finding.end_epoch) == (2, 21, 30)
    assert finding.ratio == pytest.approx(0.36 / 0.2)
    assert finding.message.startswith("Seconds per epoch climbed 80% within segment 3 (epochs 22–30: 0.2 → 0.36 s).")
    assert finding.to_json()["kind"] == "time_climb" and type(finding.to_json()["kind"]) is str


def test_memory_climb_needs_megabytes_not_just_a_ratio():
    assert trends.memory_climb([10.0 + 0.5 * i for i in range(10)], 0, 0) is None  # +40%, but 4 MB
    finding = trends.memory_climb([1000.0 + 10 * i for i in range(10)], 0, 0)
    assert finding is not None and finding.kind == "rss_climb"
    assert "(epochs 2–10: 1010 → 1090 MB, 10.0 MB per epoch)" in finding.message
    device = trends.memory_climb([None] + [500.0 + 10 * i for i in range(9)], 1, 10, kind="device")
    assert device is not None and device.kind is FindingKind.DEVICE_CLIMB
    assert device.message.startswith("Device memory climbed")
    assert trends.memory_climb([None] * 10, 0, 0) is None


def cost(setup: float, save: float, train: float, retrace: float) -> SegmentCost:
    return SegmentCost(BoundaryCost(start_seconds=setup - 0.1, load_seconds=0.1, save_seconds=save), train, retrace)


def test_boundary_overhead_leaves_out_the_first_setup():
    first = cost(setup=4.8, save=0.2, train=100.0, retrace=3.0)
    later = cost(setup=0.9, save=0.1, train=100.0, retrace=0.5)
    overhead, train = trends.boundary_overhead([first, later, later])
    assert overhead == pytest.approx(0.2 + 2 * (1.0 + 0.5)) and train == 300.0
    assert trends.boundary_overhead([]) == (0.0, 0.0)


def test_boundary_cost_suggests_a_longer_segment():
    cheap = [cost(0.4, 0.1, 100.0, 0.0)] * 4
    assert trends.boundary_cost(cheap, segment_length=10) is None
    costly = [cost(2.9, 0.1, 20.0, 1.0)] * 4
    finding = trends.boundary_cost(costly, segment_length=10, epochs_total=1000)
    assert finding is not None and finding.kind is FindingKind.BOUNDARY_COST
    assert finding.ratio == pytest.approx((0.1 + 3 * 4.0) / 80.0)
    assert (finding.before, finding.after, finding.segment) == (pytest.approx(12.1), 80.0, None)
    suggested = int(finding.message.split("--segment ")[1].split()[0])
    assert suggested == math.ceil(10 * finding.ratio / 0.025) and 10 < suggested <= 1000
    assert "over 3 boundaries against 80.0 s of training" in finding.message
    assert trends.boundary_cost(costly[:1], segment_length=10) is None  # no boundary yet


def test_segment_cost_from_a_segments_jsonl_line():
    rec = {
        "boundary_seconds": 1.0,
        "start_seconds": 0.5,
        "load_seconds": 0.2,
        "save_seconds": 0.3,
        "train_seconds": 9.0,
        "epoch_seconds": [3.0, 1.0, 1.2, 1.0],
    }
    assert SegmentCost.from_record(rec) == SegmentCost(BoundaryCost(0.5, 0.0, 0.2, 0.3), 9.0, 2.0)
    assert SegmentCost.from_record(rec).boundary.total == pytest.approx(rec["boundary_seconds"])


# -- warnings while training --------------------------------------------------------------------------


def epoch_line(epoch: int, segment: int, seconds: float, rss: float) -> dict:
    """A line of epochs.jsonl, as the training side hands it to the progress bar."""
    return {
        "epoch": epoch,
        "segment": segment,
        "seconds": seconds,
        "rss_mb": rss,
        "device_mb": None,
        "logs": {"loss": 1.0},
    }


def test_progress_warns_once_per_segment_when_time_and_memory_climb(caplog):
    progress = RunProgress(total=40, done=0, segments=2, enabled=False)
    with caplog.at_level(logging.WARNING, logger="segtrain"):
        for i in range(20):
            progress.on_epoch(epoch_line(i, 0, 1.5 if i == 0 else 0.2 + 0.01 * i, 600 + 5 * i))
    progress.close()
    assert sorted(f.kind for f in progress.warnings) == ["rss_climb", "time_climb"]
    messages = [r.getMessage() for r in caplog.records]  # each as soon as it is steady, and only then
    assert len(messages) == 2
    assert messages[0].startswith("Seconds per epoch climbed 19% within segment 1 (epochs 2–6: 0.21 → 0.25 s).")
    assert messages[1].startswith("RSS climbed 6% within segment 1 (epochs 2–9: 605 → 640 MB, 5.0 MB per epoch).")


def test_progress_shows_segment_seconds_per_epoch_and_slowdown():
    progress = RunProgress(total=40, done=0, segments=4, enabled=False)
    for i, s in enumerate([1.5, 0.2, 0.2, 0.2]):
        progress.on_epoch(epoch_line(i, 0, s, 600.0))
    assert progress.bar.postfix == "segment=1/4, s/epoch=0.2, RSS=600MB, loss=1"  # no slowdown in segment 1
    progress.on_epoch(epoch_line(4, 1, 1.4, 610.0))
    assert "slowdown" not in progress.bar.postfix  # a first epoch alone is tracing, not a slowdown
    progress.on_epoch(epoch_line(5, 1, 0.3, 610.0))
    assert progress.bar.postfix == "segment=2/4, s/epoch=0.3, slowdown=×1.50, RSS=610MB, loss=1"
    progress.close()


def test_progress_is_quiet_on_a_healthy_run_and_warns_about_costly_boundaries(caplog):
    progress = RunProgress(total=40, done=0, segments=4, enabled=False)
    with caplog.at_level(logging.WARNING, logger="segtrain"):
        for segment in range(3):
            seconds = [1.5] + [0.2] * 9
            for i, s in enumerate(seconds):
                progress.on_epoch(epoch_line(segment * 10 + i, segment, s, 600.0))
            progress.on_segment(
                {
                    "index": segment,
                    "start_epoch": segment * 10,
                    "end_epoch": segment * 10 + 10,
                    "outcome": "boundary",
                    "epoch_seconds": seconds,
                    "train_seconds": sum(seconds),
                    "start_seconds": 2.0,
                    "load_seconds": 0.3,
                    "save_seconds": 0.2,
                    "boundary_seconds": 2.5,
                }
            )
    progress.close()
    assert [f.kind for f in progress.warnings] == ["boundary_cost"]  # once, not once per segment
    assert progress.segment_length == 10
    # After segment 2: its start, load, save and retrace (2.5 + 1.3 s) and segment 1's save (0.2 s).
    assert [r.getMessage() for r in caplog.records] == [
        "Boundaries cost 61% of training time (4.0 s over 1 boundary against 6.6 s of training); try --segment 40 "
        "(it trades some of the reset that segments buy)."
    ]

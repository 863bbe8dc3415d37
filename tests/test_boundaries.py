"""`--segment auto` and `--max-memory`: where boundaries fall, on synthetic timings and on real runs."""

from __future__ import annotations

import json

import pytest

from conftest import assert_bitwise_equal, assert_exit, final_variables, fit_args, one_line, run_cli
from segtrain.training.boundaries import BoundaryPolicy, estimate_cost, estimate_spare_cost


def _decisions(policy: BoundaryPolicy, seconds: list[float], rss: list[float] | None = None) -> list[int]:
    """Epochs (1-based within the segment) after which the policy ends the segment, restarting it each time."""
    ends = []
    for i, s in enumerate(seconds):
        why = policy.observe(s, None if rss is None else rss[i])
        if why:
            ends.append(i + 1)
            policy = BoundaryPolicy(policy.auto, policy.boundary_cost, policy.max_memory_mb, policy.spare_cost)
    return ends


def test_clean_job_gets_no_boundary():
    noisy = [3.0] + [1.0 + 0.015 * ((i * 7) % 5 - 2) for i in range(200)]  # ±3 % noise, no trend
    assert _decisions(BoundaryPolicy(auto=True, boundary_cost=3.0), noisy) == []


def test_noise_above_the_tolerance_cancels_out_instead_of_adding_up():
    # ±8 % around 1 s, a cycle of -2, 0, +2, -1, +1 × 4 %: slower epochs exceed the 2 % tolerance,
    # but the faster ones take it back, so a cheap boundary (0.3 s + 0.2 s re-trace) never pays off.
    noisy = [1.2] + [1.0 + 0.04 * ((i * 7) % 5 - 2) for i in range(500)]
    assert _decisions(BoundaryPolicy(auto=True, boundary_cost=0.3), noisy) == []


def test_leaking_job_gets_a_boundary_once_the_lost_time_exceeds_its_cost():
    leaking = [1.6] + [1.0 + 0.1 * i for i in range(12)]  # each epoch 0.1 s slower
    policy = BoundaryPolicy(auto=True, boundary_cost=2.0)
    ended_after = None
    for epoch, s in enumerate(leaking, start=1):
        why = policy.observe(s)
        if why:
            ended_after = epoch
            break
    # baseline = median(1.0, 1.1, 1.2) = 1.1, noise up to 1.122; the first epoch re-traced for
    # 0.5 s, so a boundary costs 2.5 s. The excess counts from the 5th epoch on:
    # 0.178 + 0.278 + 0.378 + 0.478 + 0.578 = 1.89, + 0.678 = 2.57 > 2.5 after the 10th.
    assert ended_after == 10
    assert "exceeds a boundary's 2.5 s (2.0 s save, start and load + 0.5 s re-trace)" in why


def test_the_first_epochs_retrace_counts_as_part_of_a_boundarys_cost():
    leak = [1.0 + 0.05 * i for i in range(40)]
    cheap_trace = _decisions(BoundaryPolicy(auto=True, boundary_cost=0.3), [1.1, *leak])
    dear_trace = _decisions(BoundaryPolicy(auto=True, boundary_cost=0.3), [4.0, *leak])
    assert cheap_trace and dear_trace
    assert dear_trace[0] > cheap_trace[0]
    assert len(dear_trace) < len(cheap_trace)


def test_faster_leak_or_cheaper_boundary_means_more_boundaries():
    leak = [3.0] + [1.0 + 0.1 * i for i in range(60)]
    cheap = _decisions(BoundaryPolicy(auto=True, boundary_cost=0.5), leak)
    dear = _decisions(BoundaryPolicy(auto=True, boundary_cost=5.0), leak)
    assert len(cheap) > len(dear) >= 1


def test_unknown_cost_or_fixed_segments_never_end_early_on_time():
    leak = [3.0] + [1.0 + 0.5 * i for i in range(30)]
    assert _decisions(BoundaryPolicy(auto=True, boundary_cost=None), leak) == []
    assert _decisions(BoundaryPolicy(auto=False, boundary_cost=1.0), leak) == []


def test_memory_limit_ends_a_segment_in_any_mode():
    policy = BoundaryPolicy(auto=False, max_memory_mb=1000)
    assert policy.observe(1.0, rss_mb=900) is None
    assert "RSS 1010 MB exceeds --max-memory 1000 MB" in policy.observe(1.0, rss_mb=1010)
    gpu = BoundaryPolicy(auto=False, max_memory_mb=1000)
    assert gpu.observe(1.0, rss_mb=5000, device_mb=800) is None  # device memory is what counts on a GPU
    assert "device memory" in gpu.observe(1.0, rss_mb=5000, device_mb=1200)


def test_cost_estimate_uses_measured_boundaries_first():
    # Lines of segments.jsonl: boundary_seconds is the sum of start (or clear), load and save.
    records = [
        {"index": 0, "start_seconds": 8.5, "load_seconds": 0.25, "save_seconds": 0.25, "boundary_seconds": 9.0},
        {"index": 1, "start_seconds": 1.5, "load_seconds": 0.25, "save_seconds": 0.25, "boundary_seconds": 2.0},
        {"index": 2, "clear_seconds": 3.0, "load_seconds": 0.5, "save_seconds": 0.5, "boundary_seconds": 4.0},
    ]
    assert estimate_cost(records) == 3.0  # the first segment's cold start is no boundary
    assert estimate_cost(records[:1], load_seconds=0.25) == 0.5  # nothing measured yet but a cold start
    assert estimate_cost([], load_seconds=0.25, cold_start_seconds=2.5) == 3.0  # no pre-started worker
    assert estimate_cost([], load_seconds=0.25) == 0.5  # a pre-started worker is ready: load and save
    assert estimate_cost([]) == 0.0  # a new run: only the re-trace, measured on the first epoch, counts


def test_the_time_epochs_lose_beside_the_pre_started_worker_is_part_of_a_boundarys_cost():
    # Each segment: a 2 s trace, then epochs of 1.0 s; beside the busy spare (0.5 CPU-s each) they took 1.5 s.
    busy = {"epoch_seconds": [2.0, 1.5, 1.5, 1.0, 1.0, 1.0], "spare_cpu_seconds": [0.5, 0.5, 0.5, 0.0, 0.0, 0.0]}
    idle = {"epoch_seconds": [2.0, 1.0, 1.0, 1.0], "spare_cpu_seconds": [0.0, 0.0, 0.0, 0.0]}
    assert estimate_spare_cost([{"index": 0, **busy}, {"index": 1, **busy}]) == pytest.approx(1.0)
    assert estimate_spare_cost([{"index": 0, **idle}, {"index": 1, **busy}]) == pytest.approx(0.5)  # the median
    assert estimate_spare_cost([{"index": 0, "epoch_seconds": [2.0, 1.0]}]) == 0.0  # no spare ran (session, last)
    assert estimate_spare_cost([]) == 0.0
    # The slowdown that would pay for a boundary's 1 s alone does not pay for it with 1 s more beside the spare.
    leak = [2.0, 1.0, 1.0, 1.0, *[1.0 + 0.1 * i for i in range(1, 30)]]
    alone, beside = (
        BoundaryPolicy(auto=True, boundary_cost=1.0),
        BoundaryPolicy(auto=True, boundary_cost=1.0, spare_cost=1.0),
    )
    assert _decisions(alone, leak)[0] < _decisions(beside, leak)[0]
    why = next(filter(None, (beside.observe(s) for s in leak)))
    assert "+ 1.0 s beside the pre-started worker" in why


def _segments(run_dir):
    return [json.loads(line) for line in (run_dir / "segments.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_auto_places_boundaries_in_a_leaking_job_and_stays_exact(tmp_path):
    auto = tmp_path / "auto"
    proc = run_cli(*fit_args("leaky", auto, 14, "auto", "--seed", 2))
    assert_exit(proc, 0)
    segments = _segments(auto)
    assert len(segments) >= 2
    assert all(s["boundary_reason"] and "lost to slowdown" in s["boundary_reason"] for s in segments[:-1])
    assert [s["start_epoch"] for s in segments[1:]] == [s["end_epoch"] for s in segments[:-1]]
    assert all(s["prestarted"] for s in segments[1:])  # a boundary that auto decides on waits for no cold start
    fixed = tmp_path / "fixed"
    assert_exit(run_cli(*fit_args("leaky", fixed, 14, 14, "--seed", 2, "--isolation", "session")), 0)
    assert_bitwise_equal(final_variables(fixed), final_variables(auto))


@pytest.mark.slow
def test_auto_leaves_a_clean_job_in_one_segment(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(*fit_args("dict_io", run_dir, 8, "auto"))
    assert_exit(proc, 0)
    assert len(_segments(run_dir)) == 1


@pytest.mark.slow
def test_max_memory_ends_segments_early(tmp_path):
    probe = tmp_path / "probe"
    assert_exit(run_cli(*fit_args("leaky", probe, 1, 1)), 0)
    rss0 = json.loads((probe / "epochs.jsonl").read_text().splitlines()[0])["rss_mb"]
    run_dir = tmp_path / "run"
    proc = run_cli(*fit_args("leaky", run_dir, 6, 6, "--max-memory", round(rss0 + 40)))
    assert_exit(proc, 0)
    segments = _segments(run_dir)
    assert len(segments) >= 2
    assert "exceeds --max-memory" in segments[0]["boundary_reason"]
    assert max(s["peak_rss_mb"] for s in segments) < rss0 + 40 + 16 * 2 + 30


@pytest.mark.parametrize(
    "value, message",
    [
        ("often", "--segment must be a positive integer or 'auto'"),
        ("0", "--segment must be a positive integer or 'auto'"),
    ],
)
def test_bad_segment_values(tmp_path, value, message):
    from typer.testing import CliRunner

    from segtrain.cli import app

    result = CliRunner().invoke(app, [str(a) for a in fit_args("dict_io", tmp_path / "r", 2, value)])
    assert_exit(result, 2)
    assert message in one_line(result.stderr)

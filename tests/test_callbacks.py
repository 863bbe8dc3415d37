"""User callbacks across segments: state carried over, early stopping stops the whole run.

The script `callbacks_all.py` uses EarlyStopping(patience=4, restore_best_weights=True),
ReduceLROnPlateau(patience=2), ModelCheckpoint(save_best_only), CSVLogger,
TensorBoard, TerminateOnNaN and a user callback with get_state/set_state.
Every segmentation must stop at the same epoch with bitwise-equal weights and
the same history and files as one uninterrupted segment.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import assert_bitwise_equal, assert_exit, final_variables, fit_args, one_line, run_cli

pytestmark = pytest.mark.slow

EPOCHS = 20


def _run(base: Path, segment: int, isolation: str) -> tuple[Path, Path]:
    out = base / f"out-{segment}-{isolation}"
    out.mkdir(parents=True)
    run_dir = base / f"run-{segment}-{isolation}"
    proc = run_cli(
        *fit_args("callbacks_all", run_dir, EPOCHS, segment, "--seed", 1, "--isolation", isolation),
        env={"CALLBACK_OUT": str(out)},
    )
    assert_exit(proc, 0)
    assert "stopped early: EarlyStopping(monitor='val_loss', patience=4)" in one_line(proc.stderr)
    return run_dir, out


def _tensorboard_steps(log_dir: Path) -> dict[str, list[int]]:
    import tensorflow as tf

    steps: dict[str, list[int]] = defaultdict(list)
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == "keras":
                    continue  # the model's config, written at every fit's start, at step 0
                steps[f"{path.parent.name}/{value.tag}"].append(event.step)
    return {tag: sorted(s) for tag, s in steps.items()}


@pytest.fixture(scope="module")
def continuous(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("cb"), EPOCHS, "session")


@pytest.mark.parametrize("segment, isolation", [(1, "session"), (3, "session"), (2, "process")])
def test_segmented_callbacks_behave_as_in_one_fit(tmp_path, continuous, segment, isolation):
    ref_run, ref_out = continuous
    run_dir, out = _run(tmp_path, segment, isolation)

    # EarlyStopping stopped the whole run at the same epoch, with the best weights restored.
    ref_manifest = json.loads((ref_run / "manifest.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "stopped" and manifest["epochs_done"] == ref_manifest["epochs_done"] < EPOCHS
    assert_bitwise_equal(final_variables(ref_run), final_variables(run_dir))
    history = json.loads((run_dir / "history.json").read_text())
    assert history == json.loads((ref_run / "history.json").read_text())
    # ReduceLROnPlateau kept its patience across boundaries: the same learning rates, lowered at least once.
    assert len(set(history["learning_rate"])) > 1

    # ModelCheckpoint remembered its best: the same "best" files, no extra ones after a boundary.
    assert sorted(p.name for p in out.glob("best-*")) == sorted(p.name for p in ref_out.glob("best-*"))
    # CSVLogger appended: one header, one row per epoch.
    rows = list(csv.reader((out / "log.csv").open()))
    assert rows[0][0] == "epoch" and [r[0] for r in rows[1:]] == [str(e) for e in range(len(rows) - 1)]
    assert len(rows) - 1 == manifest["epochs_done"]
    # The user callback's get_state/set_state carried its count over.
    counts = [json.loads(line)["seen"] for line in (out / "counter.jsonl").read_text().splitlines()]
    assert counts == list(range(1, manifest["epochs_done"] + 1))
    # TensorBoard kept counting epochs and batches: the same steps, none repeated.
    assert _tensorboard_steps(out / "tb") == _tensorboard_steps(ref_out / "tb")


def test_report_shows_the_stop(continuous):
    ref_run, _ = continuous
    proc = run_cli("report", ref_run, "--json")
    assert_exit(proc, 0)
    report = json.loads(proc.stdout)
    assert report["status"] == "stopped"
    assert "EarlyStopping" in json.dumps(report)


@pytest.mark.parametrize("isolation", ["session", "process"])
def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, isolation):
    run_dir = tmp_path / "run"
    proc = run_cli(*fit_args("goes_nan", run_dir, 6, 2, "--isolation", isolation))
    assert_exit(proc, 1)
    message = one_line(proc.stderr)
    assert "loss became nan in epoch 4" in message and "ckpt-000002" in message
    assert sorted(p.name for p in run_dir.glob("ckpt-*")) == ["ckpt-000002"]
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "failed"

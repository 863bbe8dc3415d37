"""State on disk as typed, versioned dataclasses: a checkpoint's state.json, a run's manifest.json, sweep.json and
cv.json. Files written before they had a version (the fixture run-32995aa) read; a newer version is refused (exit 2);
a run's status moves only as `segtrain.state.manifest.TRANSITIONS` allows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from segtrain.errors import EXIT_BAD_INPUT, ConfigError
from segtrain.outcomes import RunStatus, SegmentOutcome
from segtrain.paths import RunPaths
from segtrain.state import checkpoint, search_manifests
from segtrain.state import manifest as run_manifest
from segtrain.state.checkpoint_state import VERSION, CheckpointState, read_state
from segtrain.state.manifest import TRANSITIONS, Reason, RunManifest, ScriptRecord, TransitionError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "run-32995aa"
S = RunStatus


def test_a_state_json_from_before_versions_reads_with_defaults():
    state = read_state(FIXTURE / "ckpt-000004-end" / "state.json")
    assert (state.version, state.format, state.epoch, state.batch, state.final) == (1, "keras", 4, 0, True)
    assert state.outcome is SegmentOutcome.FINISHED and state.segment == 1 and state.steps_per_epoch == 5
    assert state.pruned is False and state.metrics is None and state.extra == {}  # keys it never wrote: defaults
    assert set(state.files) == {"model.keras"} and state.sizes["model.keras"] > 0
    middle = read_state(FIXTURE / "ckpt-000002" / "state.json")
    assert middle.outcome is None and not middle.final and len(middle.history["loss"]) == 2


def test_checkpoint_state_round_trips_and_keeps_keys_it_does_not_know():
    state = CheckpointState(
        format="h5",
        epoch=3,
        batch=7,
        files={"model.weights.h5": "crc32:00000001"},
        sizes={"model.weights.h5": 10},
        outcome=SegmentOutcome.STOPPED,
        stop_reason="EarlyStopping",
        pruned=True,
        metrics=[[1.0, 2.0]],
        history={"loss": [0.5, 0.25]},
        extra={"from_later": {"x": 1}},
    )
    data = json.loads(json.dumps(state.to_json()))
    assert data["version"] == VERSION and data["outcome"] == "stopped" and data["from_later"] == {"x": 1}
    assert CheckpointState.from_json(data) == state


def test_a_state_json_of_a_newer_segtrain_is_refused(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    state_file = run / "ckpt-000004-end" / "state.json"
    state_file.write_text(json.dumps(dict(json.loads(state_file.read_text()), version=VERSION + 1)))
    with pytest.raises(ConfigError, match="written by a newer segtrain") as info:
        checkpoint.latest(RunPaths(run))  # not skipped as damaged: nothing may train over it
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_a_state_json_without_its_position_is_no_checkpoint_state():
    with pytest.raises(ValueError, match="no 'files'"):
        CheckpointState.from_json({"format": "keras", "epoch": 1})


def test_a_manifest_from_before_versions_reads():
    paths = RunPaths(FIXTURE)
    found = run_manifest.read_manifest(paths)
    assert found is not None and found.version == 1 and found.status is S.FINISHED and found.epochs_done == 4
    assert found.script == ScriptRecord("/tmp/old/fixture_mlp.py", found.script.sha256, "script/fixture_mlp.py")
    assert found.seed == 7 and found.config["epochs"] == 4 and found.extra == {}
    assert RunManifest.from_json(json.loads(json.dumps(found.to_json()))) == found


def test_a_manifest_of_a_newer_segtrain_is_refused(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    data = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps(dict(data, version=2)))
    with pytest.raises(ConfigError, match="written by a newer segtrain") as info:
        run_manifest.read_run(run)
    assert info.value.exit_code == EXIT_BAD_INPUT


def _manifest(status: RunStatus) -> RunManifest:
    return RunManifest(config={"epochs": 2}, script=ScriptRecord("m.py", "0" * 64), data_seed=1, status=status)


@pytest.mark.parametrize(("start", "to", "reason"), sorted((a, b, r) for (a, b), rs in TRANSITIONS.items() for r in rs))
def test_every_move_in_the_table_is_allowed(start, to, reason):
    assert _manifest(start).transition(to, reason).status is to


@pytest.mark.parametrize(
    ("start", "to", "reason"),
    [
        (S.FINISHED, S.RUNNING, Reason.ORDINARY),  # a finished run trains again only extended (or replayed)
        (S.STOPPED, S.RUNNING, Reason.ORDINARY),  # a stopped run stays stopped unless continued
        (S.STOPPED, S.RUNNING, Reason.EXTENDED),
        (S.FINISHED, S.STOPPED, Reason.ORDINARY),  # an ended run does not end again
        (S.FINISHED, S.FAILED, Reason.ORDINARY),
        (S.NEW, S.FINISHED, Reason.ORDINARY),  # a run ends only after it ran
        (S.NEW, S.FINISHED, Reason.REPAIRED),
        (S.INTERRUPTED, S.FINISHED, Reason.ORDINARY),
        (S.RUNNING, S.NEW, Reason.ORDINARY),  # nothing goes back to new
        (S.RUNNING, S.CRASHED, Reason.ORDINARY),  # crashed is what a reader sees, never recorded
    ],
)
def test_a_move_the_table_does_not_allow_raises(start, to, reason):
    with pytest.raises(TransitionError, match=f"from {start} to {to}"):
        _manifest(start).transition(to, reason)


def test_the_writes_move_the_status_on_disk_and_keep_the_rest(tmp_path):
    paths = RunPaths(tmp_path)
    run_manifest.write_manifest(paths, _manifest(S.NEW))
    run_manifest.start(paths, pid=123)
    assert json.loads(paths.manifest.read_text())["status"] == "running"
    run_manifest.end(paths, S.FINISHED, "finished all 2 epochs", 2)
    with pytest.raises(TransitionError):
        run_manifest.fail(paths, "too late")  # a finished run's record stays
    with pytest.raises(TransitionError):
        run_manifest.start(paths, pid=124)
    run_manifest.record_epochs(paths, 4)
    run_manifest.start(paths, pid=125, reason=Reason.EXTENDED)
    run_manifest.repair(paths, S.FINISHED, 4, "finished all 4 epochs")  # a kill -9 after the final checkpoint
    saved = json.loads(paths.manifest.read_text())
    assert (saved["status"], saved["pid"], saved["epochs_done"], saved["config"]) == ("finished", 125, 4, {"epochs": 4})
    assert saved["version"] == 1 and saved["data_seed"] == 1 and saved["updated"] > 0


def test_sweep_and_cv_manifests_round_trip_and_refuse_a_newer_version(tmp_path):
    sweep = search_manifests.SweepManifest(
        token="ab", script=ScriptRecord("s.py", "1" * 64), config={"metric": "val_loss"}, study="s", identity={"a": 1}
    )
    search_manifests.write(tmp_path / "sweep.json", sweep)
    assert search_manifests.read_sweep_manifest(tmp_path / "sweep.json") == sweep
    cv = search_manifests.CvManifest(split_seed=3, script=sweep.script, config={"folds": 2, "run": {}})
    search_manifests.write(tmp_path / "cv.json", cv)
    assert search_manifests.read_cv_manifest(tmp_path / "cv.json") == cv and cv.folds == 2
    data = json.loads((tmp_path / "cv.json").read_text())
    (tmp_path / "cv.json").write_text(json.dumps(dict(data, version=VERSION + 1)))
    with pytest.raises(ConfigError, match="written by a newer segtrain"):
        search_manifests.read_cv_manifest(tmp_path / "cv.json")

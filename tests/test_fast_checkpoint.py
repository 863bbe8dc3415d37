"""Checkpoints in-process, on a tiny compiled model: the commit, the verification, the fallback from a
damaged checkpoint, leftovers of a crash mid-save, and pruning.

A checkpoint is complete when its state.json parses and every file it lists has the recorded
checksum; `is_complete` decides, `latest` and `named_or_latest` only use complete ones.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from segtrain.errors import CheckpointError
from segtrain.paths import RunPaths
from segtrain.state import checkpoint
from segtrain.state.checkpoint import Snapshot

MODEL_FILE = {"keras": "model.keras", "h5": "model.weights.h5"}


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 4), "float32"), np.zeros((8, 2), "float32"), epochs=1, verbose=0)  # optimizer state
    return model


def _save(model, paths: RunPaths, epoch: int, fmt: str = "keras", **snapshot) -> checkpoint.Checkpoint:
    return checkpoint.save(
        model, paths, fmt, Snapshot(epoch=epoch, state={"segment": epoch, "note": "test"}, **snapshot)
    )


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("fmt", ["keras", "h5", "savedmodel"])
def test_save_commits_a_complete_checkpoint(tmp_path, model, fmt):
    paths = RunPaths(tmp_path)
    ckpt = _save(model, paths, 1, fmt, arrays={"rng": np.arange(3)})
    assert ckpt.path == tmp_path / "ckpt-000001"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000001"], "no temporary folder left behind"
    assert checkpoint.is_complete(ckpt.path) == (True, "")
    assert checkpoint.is_complete(ckpt.path, hashed=False) == (True, "")
    state = json.loads((ckpt.path / "state.json").read_text())
    assert state["format"] == fmt and state["epoch"] == 1 and state["batch"] == 0 and state["final"] is False
    assert state["note"] == "test" and state["segment"] == 1  # the snapshot's own state is kept
    on_disk = sorted(p.name for p in ckpt.path.iterdir() if p.name != "state.json")
    assert sorted(state["files"]) == on_disk == sorted(state["sizes"])  # every file is listed, with its size
    assert "arrays.npz" in on_disk
    if fmt in MODEL_FILE:
        assert MODEL_FILE[fmt] in on_disk
    assert checkpoint.latest(paths).path == ckpt.path


def test_names_and_order_of_mid_epoch_and_final_checkpoints(tmp_path, model):
    paths = RunPaths(tmp_path)
    names = [
        _save(model, paths, 2, batch=5).path.name,
        _save(model, paths, 2).path.name,
        _save(model, paths, 3, final=True).path.name,
    ]
    assert names == ["ckpt-000002.000005", "ckpt-000002", "ckpt-000003-end"]
    newest = checkpoint.latest(paths)
    assert newest.path.name == "ckpt-000003-end" and newest.final and newest.epoch == 3
    shutil.rmtree(newest.path)
    newest = checkpoint.latest(paths)  # 2 epochs and 5 batches of the third come after 2 epochs
    assert newest.path.name == "ckpt-000002.000005" and newest.epoch == 2 and newest.batch == 5
    shutil.rmtree(newest.path)
    newest = checkpoint.latest(paths)
    assert newest.path.name == "ckpt-000002" and not newest.final and newest.batch == 0


@pytest.mark.parametrize("how", ["truncate", "bitflip"])
def test_a_damaged_model_file_makes_a_checkpoint_incomplete(tmp_path, model, how):
    ckpt = _save(model, RunPaths(tmp_path), 1)
    _damage(ckpt.path / "model.keras", how)
    assert checkpoint.is_complete(ckpt.path) == (
        False,
        "model.keras does not match its checksum (truncated or corrupted)",
    )
    if how == "truncate":  # sizes alone see a truncation
        ok, why = checkpoint.is_complete(ckpt.path, hashed=False)
        assert not ok and why.startswith("model.keras has ") and why.endswith("when saved (truncated)")


def test_a_missing_file_or_an_unreadable_state_makes_a_checkpoint_incomplete(tmp_path, model):
    paths = RunPaths(tmp_path)
    first, second = _save(model, paths, 1, arrays={"a": np.zeros(2)}), _save(model, paths, 2)
    (first.path / "arrays.npz").unlink()
    assert checkpoint.is_complete(first.path) == (False, "arrays.npz is missing")
    (second.path / "state.json").write_text('{"files": ')
    ok, why = checkpoint.is_complete(second.path)
    assert not ok and why.startswith("unreadable state.json")
    assert checkpoint.is_complete(tmp_path / "ckpt-000009") == (False, "no state.json")


@pytest.mark.parametrize("how", ["truncate", "bitflip"])
def test_latest_skips_a_damaged_newest_checkpoint(tmp_path, model, how, caplog):
    paths = RunPaths(tmp_path)
    for epoch in (1, 2, 3):
        _save(model, paths, epoch)
    _damage(tmp_path / "ckpt-000003" / "model.keras", how)
    with caplog.at_level(logging.WARNING):
        newest = checkpoint.latest(paths)
    assert newest is not None and newest.path.name == "ckpt-000002" and newest.epoch == 2
    assert "Skipping damaged checkpoint ckpt-000003: model.keras does not match its checksum" in caplog.text
    _damage(tmp_path / "ckpt-000002" / "model.keras", how)
    assert checkpoint.latest(paths).path.name == "ckpt-000001"
    _damage(tmp_path / "ckpt-000001" / "model.keras", how)
    assert checkpoint.latest(paths) is None


def test_a_folder_without_state_json_is_ignored(tmp_path, model):
    """A checkpoint folder whose state.json was never written (not committed) is no checkpoint."""
    paths = RunPaths(tmp_path)
    _save(model, paths, 1)
    uncommitted = tmp_path / "ckpt-000002"
    shutil.copytree(tmp_path / "ckpt-000001", uncommitted)
    (uncommitted / "state.json").unlink()
    assert checkpoint.latest(paths).path.name == "ckpt-000001"


def test_leftovers_of_a_crash_mid_save_are_not_read_and_are_cleaned(tmp_path, model):
    paths = RunPaths(tmp_path)
    _save(model, paths, 1)
    # A complete-looking checkpoint under a temporary name (the rename never happened), and a temp file.
    leftover = tmp_path / ".tmp-4242-ckpt-000002"
    shutil.copytree(tmp_path / "ckpt-000001", leftover)
    state = json.loads((leftover / "state.json").read_text())
    (leftover / "state.json").write_text(json.dumps(dict(state, epoch=2)))
    (tmp_path / ".tmp-4242-manifest.json").write_text("{")
    assert checkpoint.latest(paths).path.name == "ckpt-000001"
    checkpoint.clean_leftovers(paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000001"]
    assert checkpoint.is_complete(tmp_path / "ckpt-000001") == (True, "")


def test_saving_again_at_the_same_position_replaces_the_stale_checkpoint(tmp_path, model):
    paths = RunPaths(tmp_path)
    _save(model, paths, 1)
    (tmp_path / "ckpt-000001" / "model.keras").write_bytes(b"stale")
    again = _save(model, paths, 1)
    assert checkpoint.is_complete(again.path) == (True, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000001"]


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_prune_keeps_the_k_newest_complete_checkpoints(tmp_path, model, keep):
    paths = RunPaths(tmp_path)
    saved = [_save(model, paths, epoch) for epoch in range(1, 5)]
    uncommitted = tmp_path / "ckpt-000000"  # older, never committed: removed too
    uncommitted.mkdir()
    newest = _save(model, paths, 5, final=True)
    checkpoint.prune(paths, keep, newest)
    names = [p.name for p in paths.checkpoint_dirs()]
    assert names == [c.path.name for c in [*saved, newest]][-keep:]
    assert all(checkpoint.is_complete(tmp_path / name)[0] for name in names)
    assert checkpoint.latest(paths).path == newest.path


def test_prune_never_deletes_checkpoints_newer_than_the_one_just_committed(tmp_path, model):
    paths = RunPaths(tmp_path)
    _save(model, paths, 1)
    second = _save(model, paths, 2)
    _save(model, paths, 3)
    checkpoint.prune(paths, 1, second)
    assert [p.name for p in paths.checkpoint_dirs()] == ["ckpt-000002", "ckpt-000003"]


def test_named_or_latest_falls_back_from_a_damaged_named_checkpoint(tmp_path, model, caplog):
    paths = RunPaths(tmp_path)
    assert checkpoint.named_or_latest(paths, None) is None  # a new run: nothing to start from
    _save(model, paths, 1)
    _save(model, paths, 2)
    assert checkpoint.named_or_latest(paths, "ckpt-000001").path.name == "ckpt-000001"
    _damage(tmp_path / "ckpt-000002" / "model.keras", "bitflip")
    with caplog.at_level(logging.WARNING):
        chosen = checkpoint.named_or_latest(paths, "ckpt-000002")
    assert chosen.path.name == "ckpt-000001"
    assert "Checkpoint ckpt-000002 is damaged (model.keras does not match its checksum" in caplog.text
    _damage(tmp_path / "ckpt-000001" / "model.keras", "truncate")
    with pytest.raises(CheckpointError, match=r"Checkpoint ckpt-000002 is damaged .* no complete checkpoint is left"):
        checkpoint.named_or_latest(paths, "ckpt-000002")


def test_a_saved_checkpoint_holds_the_model_and_its_optimizer_state(tmp_path, model):
    import keras

    _save(model, RunPaths(tmp_path), 1)
    loaded = keras.saving.load_model(checkpoint.latest(RunPaths(tmp_path)).path / "model.keras")
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 1
    for a, b in zip(
        model.weights + model.optimizer.variables, loaded.weights + loaded.optimizer.variables, strict=True
    ):
        assert np.array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_a_loaded_model_gets_what_fits_first_step_creates_and_that_step_traces_once(tmp_path, model, fmt):
    import keras

    from segtrain.state import model_state

    x, y = np.ones((8, 4), "float32"), np.zeros((8, 2), "float32")
    ckpt = _save(model, RunPaths(tmp_path), 1, fmt)

    def build():
        fresh = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        fresh.compile(optimizer="adam", loss="mse", metrics=["mae"])
        return fresh

    reads: list[int] = []

    def sample_batch():
        reads.append(1)
        return x, y, None

    loaded = checkpoint.load_model_files(ckpt, build, {}, sample_batch)
    saved = [v.numpy() for v in loaded.weights + loaded.optimizer.variables]
    model_state.create_fit_variables(loaded, sample_batch)
    model_state.create_fit_variables(loaded, sample_batch)  # nothing left to create: the batch is not read again
    assert len(reads) == 1 and loaded.metrics_variables, "the loss tracker's and MAE's variables exist"
    assert all(not np.any(v.numpy()) for v in loaded.metrics_variables)
    for before, after in zip(saved, loaded.weights + loaded.optimizer.variables, strict=True):
        assert np.array_equal(before, after.numpy()), "creating variables changed none that were loaded"
    traces: list[int] = []
    step = loaded.train_step
    loaded.train_step = lambda data: traces.append(1) or step(data)
    loaded.fit(x, y, epochs=1, verbose=0)
    assert traces == [1], "a step that creates no variable is traced once, not twice"


@pytest.mark.parametrize("scratch", ["writable", "unwritable"])
def test_a_keras_checkpoint_loads_into_a_built_model_and_leaves_nothing_behind(tmp_path, model, scratch, monkeypatch):
    """Loading into the script's own model reads a copy of the weights member (faster than Keras reading it inside
    the zip); where no copy can be written, from the archive: the same variables either way, no leftover."""
    import tempfile

    import keras

    ckpt = _save(model, RunPaths(tmp_path), 1)
    if scratch == "unwritable":

        def full_disk(**_: object) -> str:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(tempfile, "mkdtemp", full_disk)
    fresh = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    fresh.compile(optimizer="adam", loss="mse")
    loaded = checkpoint.load_model_files(ckpt, None, {}, lambda: (np.ones((8, 4), "float32"), None, None), fresh)
    assert loaded is fresh and int(fresh.optimizer.iterations.numpy()) == 1
    for a, b in zip(model.weights + model.optimizer.variables, fresh.weights + fresh.optimizer.variables, strict=True):
        assert np.array_equal(a.numpy(), b.numpy())
    assert RunPaths(tmp_path).leftovers() == [], "the copy of the weights is removed"


def test_the_fingerprint_is_the_same_summed_in_threads_or_not_and_threads_start_only_for_large_models(
    model, monkeypatch
):
    from segtrain.state import model_state

    pools: list[int] = []
    real_pool = model_state.ThreadPoolExecutor
    monkeypatch.setattr(model_state, "ThreadPoolExecutor", lambda **kw: pools.append(1) or real_pool(**kw))
    alone = model_state.fingerprint(model)
    assert not pools, "a model of a few bytes is summed without starting threads"
    monkeypatch.setattr(model_state, "THREADS_FROM_VALUES", 1)
    threaded = model_state.fingerprint(model)
    assert pools == [1]
    assert threaded == alone and len(alone["weights"]) == 2 and len(alone["optimizer"]) == 6  # iterations, lr, m, v

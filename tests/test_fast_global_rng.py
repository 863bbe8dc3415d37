"""A backend's global generator across the end of a `fit` call's data (`GlobalRngAcrossDataEnd`).

On torch, Keras makes a new DataLoader iterator when a `fit` call's data ends, which draws from torch's global
generator before the epoch's validation; a segment's data ends at its last epoch, one long fit's only at the
run's. The hooks are driven here in the order torch's `fit` calls them (measured on torch 2.13), against a
generator that counts draws, so the test runs where torch is not installed.
"""

from __future__ import annotations

import pytest

from segtrain.state import model_state
from segtrain.training.callback import GlobalRngAcrossDataEnd


class Generator:
    """A global generator whose state is the number of draws made from it."""

    def __init__(self) -> None:
        self.draws = 0

    def state(self) -> dict[str, str]:
        return {"draws": str(self.draws)}

    def set(self, saved: dict[str, str]) -> None:
        self.draws = int(saved["draws"])


@pytest.fixture
def generator(monkeypatch) -> Generator:
    g = Generator()
    monkeypatch.setattr(model_state, "global_rng_state", g.state)
    monkeypatch.setattr(model_state, "restore_global_rng_state", g.set)
    return g


def _epoch(guard: GlobalRngAcrossDataEnd, g: Generator, data_ends: bool, validation: bool) -> int:
    """One epoch of 3 batches, each drawing a Dropout mask; the draws the next epoch's first batch finds."""
    guard.on_epoch_begin(0)
    for batch in range(3):
        g.draws += 1  # the batch's masks
        guard.on_train_batch_end(batch)
    if data_ends:
        g.draws += 1  # Keras' new DataLoader iterator for the data that ended
    if validation:
        guard.on_test_begin()
        g.draws += 2  # the validation's iterator, and the new one when its data ends
    guard.on_epoch_end(0)
    return g.draws


@pytest.mark.parametrize("validation", [True, False])
def test_the_draw_at_the_end_of_a_segments_data_is_undone_and_every_other_kept(generator, validation):
    long_run, segmented = GlobalRngAcrossDataEnd(), GlobalRngAcrossDataEnd()
    for guard in (long_run, segmented):
        guard.set_params({"steps": 3, "epochs": 2})
    assert long_run.in_use
    per_epoch = 3 + (2 if validation else 0)
    assert _epoch(long_run, generator, data_ends=False, validation=validation) == per_epoch
    generator.draws = 0
    assert _epoch(segmented, generator, data_ends=True, validation=validation) == per_epoch


def test_it_does_nothing_on_a_backend_without_a_global_generator(monkeypatch):
    monkeypatch.setattr(model_state, "global_rng_state", lambda: None)
    called = []
    monkeypatch.setattr(model_state, "restore_global_rng_state", called.append)
    guard = GlobalRngAcrossDataEnd()
    guard.set_params({"steps": 1})
    guard.on_train_batch_end(0)
    guard.on_test_begin()
    guard.on_epoch_end(0)
    assert not guard.in_use and called == []

"""A model with its own compile(d_optimizer, g_optimizer, loss_fn), as keras.io writes GANs (issue 14).

It trains exactly across segments, and `segtrain.load_model` brings it back, in this fresh process, with both
optimizers' state, in both formats that can hold it.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_exit, fit_args, run_cli

pytestmark = pytest.mark.slow


def _state(run_dir) -> dict[str, list[np.ndarray]]:
    import segtrain

    model = segtrain.load_model(run_dir)
    return {
        "weights": [v.numpy() for v in model.weights],
        "d_optimizer": [v.numpy() for v in model.d_optimizer.variables],
        "g_optimizer": [v.numpy() for v in model.g_optimizer.variables],
    }


@pytest.fixture(scope="module")
def one_segment(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("gan") / "one"
    assert_exit(run_cli(*fit_args("gan", run_dir, 4, 4, "--seed", 0, "--isolation", "session")), 0)
    return _state(run_dir)


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_a_gan_with_its_own_compile_trains_exactly_and_loads_with_both_optimizers(tmp_path, one_segment, fmt):
    run_dir = tmp_path / fmt
    assert_exit(run_cli(*fit_args("gan", run_dir, 4, 2, "--seed", 0, "--format", fmt)), 0)
    state = _state(run_dir)
    assert int(state["d_optimizer"][0]) == int(state["g_optimizer"][0]) == 16  # 4 epochs of 4 batches each
    for kind in ("weights", "d_optimizer", "g_optimizer"):
        assert len(state[kind]) == len(one_segment[kind]) > 1
        for i, (a, b) in enumerate(zip(state[kind], one_segment[kind], strict=True)):
            assert np.array_equal(a, b), f"{fmt}: {kind}[{i}] differs from one segment"

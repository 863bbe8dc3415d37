"""Workload 1, clean: an MLP on synthetic data that neither leaks nor slows down.

What it measures is segtrain's own cost against one plain `fit` over the same
epochs: process start, checkpoint save and load, the first epoch's retrace after
each boundary, segtrain's data pipeline. BENCH_QUICK=1 shrinks it to a few
milliseconds per epoch (for tests).
"""

import bench_common as common

FEATURES = 256
SAMPLES = 256 if common.QUICK else 20480
WIDTH = 32 if common.QUICK else 768
fit_kwargs = {"batch_size": 256}


def load_data():
    return common.synthetic(SAMPLES, FEATURES)


def build_model():
    return common.mlp(FEATURES, WIDTH)

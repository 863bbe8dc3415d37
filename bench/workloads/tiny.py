"""The mission's own shape at its smallest: a model whose epochs last ~0.016 s, trained for 1000 epochs.

A segment of 50 epochs lasts under a second here, so what a boundary costs (a worker's start, a save, a
load, a trace) is all there is to see (bench/start.py).
"""

import bench_common as common

FEATURES = 16
fit_kwargs = {"batch_size": 64}


def load_data():
    return common.synthetic(256, FEATURES)


def build_model():
    return common.mlp(FEATURES, 16)

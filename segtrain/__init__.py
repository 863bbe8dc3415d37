"""segtrain: keep very long Keras training jobs fast, bounded in memory and resumable."""

from segtrain.api import cv, export, fit, load_model, resume, run, sweep, verify
from segtrain.config import RunConfig
from segtrain.errors import SegtrainError
from segtrain.outcomes import RunOutcome, RunStatus, SegmentOutcome
from segtrain.version import __version__

__all__ = [
    "RunConfig",
    "RunOutcome",
    "RunStatus",
    "SegmentOutcome",
    "SegtrainError",
    "__version__",
    "cv",
    "export",
    "fit",
    "load_model",
    "resume",
    "run",
    "sweep",
    "verify",
]

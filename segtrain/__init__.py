"""segtrain: keep very long Keras training jobs fast, bounded in memory and resumable."""

__version__ = "0.1.0"

from segtrain.api import fit, load_model, resume  # noqa: E402
from segtrain.config import RunConfig  # noqa: E402
from segtrain.errors import SegtrainError  # noqa: E402
from segtrain.outcomes import RunOutcome  # noqa: E402

__all__ = ["__version__", "fit", "resume", "load_model", "RunConfig", "RunOutcome", "SegtrainError"]

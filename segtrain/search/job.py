"""`python -m segtrain.search.job SWEEP_DIR INDEX`: one job of `segtrain sweep --jobs J` (see `search.sweep`)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from segtrain.config import RunConfig, Verbosity
from segtrain.errors import SegtrainError
from segtrain.search.config import SweepConfig, read_sweep_manifest
from segtrain.search.sweep import STORAGE_ENV, sweep


def main(sweep_dir: str, index: int) -> int:
    logging.basicConfig(level=logging.WARNING, format=f"segtrain[job {index}]: %(message)s")
    logging.getLogger("segtrain").setLevel(logging.INFO)
    try:
        saved = dict(read_sweep_manifest(Path(sweep_dir)).config)
        run = RunConfig.from_json(saved.pop("run"))
        saved["storage"] = os.environ.get(STORAGE_ENV) or None
        cfg = SweepConfig(run=run, **{k: v for k, v in saved.items() if k != "force"})
        if run.verbosity == Verbosity.QUIET:
            logging.getLogger("segtrain").setLevel(logging.ERROR)
        return sweep(cfg, progress=False, job=index).exit_code
    except SegtrainError as e:
        print(f"segtrain[job {index}]: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))

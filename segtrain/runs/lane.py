"""`python -m segtrain.runs.lane INDEX`: process INDEX of `segtrain run --jobs J` (see `runs.launch.run`).

What it runs comes as JSON in `SEGTRAIN_LANE` (the run's options, whether to show progress, the command's
invocation); it drives its share of the script's search (`segtrain.worker.optimize`).
"""

from __future__ import annotations

import json
import logging
import os
import sys

from segtrain.config import RunConfig, Verbosity
from segtrain.errors import EXIT_OK, EXIT_RESUMABLE, SegtrainError
from segtrain.runs.launch import LANE_ENV, run_lane
from segtrain.worker.protocol import Drive


def main(index: int) -> int:
    lane = json.loads(os.environ.pop(LANE_ENV))
    cfg = RunConfig.from_json(lane["config"])
    prefix = "segtrain" if index == 0 else f"segtrain[lane {index}]"
    logging.basicConfig(level=logging.WARNING, format=f"{prefix}: %(message)s")
    quiet = cfg.verbosity == Verbosity.QUIET
    logging.getLogger("segtrain").setLevel(logging.ERROR if quiet else logging.INFO)
    try:
        outcome = run_lane(cfg, lane["progress"] and index == 0, Drive(index, cfg.jobs, lane["invocation"]))
        if outcome.exit_code not in (EXIT_OK, EXIT_RESUMABLE):
            print(f"{prefix}: {outcome.message}", file=sys.stderr)
        return outcome.exit_code
    except SegtrainError as e:
        print(f"{prefix}: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))

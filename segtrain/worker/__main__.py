"""`python -m segtrain.worker RUN_DIR`: the entry point of a segment worker (see `segtrain.worker.main`)."""

import sys

from segtrain.worker.main import main

main(sys.argv[1])

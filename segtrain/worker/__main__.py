"""`python -m segtrain.worker`: the entry point of a segment worker (see `segtrain.worker.main`)."""

from segtrain.worker.main import main

main()

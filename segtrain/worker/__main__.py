"""`python -m segtrain.worker [RUN_DIR]`: a segment worker (see `segtrain.worker.main`).

RUN_DIR, where the worker is started for a known run, only names it for `ps`
and `pgrep`: the worker takes everything from its environment (`WorkerEnv`).
"""

from segtrain.worker.main import main

main()

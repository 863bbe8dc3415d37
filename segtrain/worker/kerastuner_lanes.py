"""`segtrain run tune.py --jobs J`: one KerasTuner search driven from J processes, through KerasTuner's own chief.

KerasTuner searches in many processes with one oracle (its "chief", a gRPC
server: `keras_tuner.src.distribute.oracle_chief`) that hands trials to
"worker" tuners (`OracleClient`, chosen by the `KERASTUNER_*` variables). Under
`segtrain run --jobs J` each lane's driver (`segtrain.worker.kerastuner`) is one
such tuner, with its `run_trial` segtrain's as with one lane:

* Lane 0 serves its tuner's oracle on a port of the loopback interface (said in
  the search call's records, `chief.json`, with the command's invocation) and
  runs its own loop against that oracle in the same process (KerasTuner
  serialises every oracle call, `synchronized`; the tuner's saves are made under
  the same lock here). Its oracle shows every trial, as a chief does, on the
  script's stdout.
* Lanes 1.. wait for that port, become KerasTuner workers (`tuner{lane}`) and
  run the loop: trials come from the chief, results go back to it.
* Each lane says when its loop has ended (`optimize.lanes_done`); lane 0 stops
  serving once all have, and the script goes on there, with every trial told.
  A kill -9 of the command leaves trials running in the project: the same
  command reloads it, and KerasTuner's oracle hands them out again (to any lane).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

from segtrain.state.atomic import read_json, write_json
from segtrain.worker import output
from segtrain.worker.optimize import lanes_done
from segtrain.worker.protocol import Drive

_LOOPBACK = "127.0.0.1"
_IDLE_SECONDS = 0.2  # how often a loop asks again while the oracle has no trial for it


def search(tuner: Any, records: Path, drive: Drive, loop: Callable[[], None]) -> None:
    """KerasTuner's search `loop` (its own `BaseTuner.search`) in lane `drive.lane` of `drive.lanes`."""
    chief = records / "chief.json"
    _ask_calmly(tuner)
    if drive.lane == 0:
        with _serving(tuner, chief, drive.invocation):
            loop()
            lanes_done(records, drive)
        return
    output.mark_fresh()  # its trials' lines are its own; the script's top was lane 0's to show
    _join(tuner, chief, drive)
    loop()
    lanes_done(records, drive)  # ends this process


@contextlib.contextmanager
def _serving(tuner: Any, chief: Path, invocation: str) -> Iterator[None]:
    """Serve the tuner's oracle to the other lanes, as KerasTuner's chief does, while the block runs."""
    import grpc  # deferred: KerasTuner's dependency, for a search in many processes
    from keras_tuner.src import protos  # deferred: an optional extra
    from keras_tuner.src.distribute.oracle_chief import OracleServicer  # deferred: an optional extra
    from keras_tuner.src.engine.oracle import synchronized  # deferred: an optional extra

    oracle = tuner.oracle
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    protos.get_service_grpc().add_OracleServicer_to_server(OracleServicer(oracle), server)
    port = server.add_insecure_port(f"{_LOOPBACK}:0")
    server.start()
    locked = synchronized(lambda oracle, action: action())  # the oracle's own lock, as its methods take it
    save = tuner.save
    tuner.save = lambda: locked(oracle, save)  # its state is read while the server's thread may change it
    try:
        write_json(chief, {"port": port, "invocation": invocation})
        yield
    finally:
        server.stop(grace=None)
        del tuner.save


def _join(tuner: Any, chief: Path, drive: Drive) -> None:
    """Make the tuner a KerasTuner worker of lane 0's chief, once it serves (its process ends the command where it
    fails: this one is stopped then)."""
    while (served := read_json(chief) if chief.exists() else {}).get("invocation") != drive.invocation:
        time.sleep(0.1)
    tuner_id = f"tuner{drive.lane}"
    os.environ.update(
        KERASTUNER_ORACLE_IP=_LOOPBACK,
        KERASTUNER_ORACLE_PORT=str(served["port"]),
        KERASTUNER_TUNER_ID=tuner_id,  # and so a worker's `save` leaves the oracle's files to the chief
    )
    from keras_tuner.src.distribute import oracle_client  # deferred: an optional extra

    tuner.oracle = oracle_client.OracleClient(tuner.oracle)
    tuner.tuner_id = tuner_id


def _ask_calmly(tuner: Any) -> None:
    """KerasTuner's loop asks again at once where the oracle has no trial for it yet (IDLE: Hyperband waits for a
    round's trials in other lanes); ask every `_IDLE_SECONDS` then instead."""
    pre_create, begin = tuner.pre_create_trial, tuner.on_trial_begin
    began = [True]  # whether a trial began since the loop last asked

    def pre_create_trial() -> None:
        if not began[0]:
            time.sleep(_IDLE_SECONDS)
        began[0] = False
        pre_create()

    def on_trial_begin(trial: Any) -> None:
        began[0] = True
        begin(trial)

    tuner.pre_create_trial, tuner.on_trial_begin = pre_create_trial, on_trial_begin

"""A launched script's KerasTuner search (`tuner.search(...)`): the tuner's loop in one worker, each trial in its own.

Under `segtrain run`, a script written as keras.io's "Getting started with
KerasTuner" (`build_model(hp)`, `RandomSearch`, `BayesianOptimization` or `Hyperband`,
`tuner.search(x, y, epochs=..., validation_data=...)`, then
`get_best_models()`, `results_summary()`) runs unmodified, the way a script's
`study.optimize` does (`segtrain.worker.optimize`, the same parent side):

* The first worker that reaches `tuner.search` drives it (`Drive`): KerasTuner's
  own loop, with its oracle deciding the trials, except that each trial's
  `run_trial` asks the parent to run it (`TrialRequest`) and gets back what
  KerasTuner's own `run_trial` returned there: each execution's history.
* A worker the parent starts for a trial (`RunTrial`) has the tuner the script
  made reload the project the driver keeps, and calls KerasTuner's own
  `run_trial` for that trial: each execution's `fit` is a stage of the trial's
  run directory, in segments; `SaveBestEpoch` writes the best epoch's weights
  into the project, as it would in one process (its best value crosses the
  boundaries, `state.callback_state`), so that `get_best_models()` loads them.
* The same command after a kill -9 reloads the project (its `overwrite=True` is
  for the first run only) and KerasTuner's oracle hands the interrupted trial out
  again: its run goes on from its newest checkpoint.

* `Hyperband`'s trials after a bracket's first round go on from an earlier
  trial's best weights (its `_build_hypermodel` loads them from the project) at
  `fit(initial_epoch=...)`: the trial's run trains epochs `initial_epoch ..
  epochs - 1`, counted from 0 in its records, from Keras' `initial_epoch` in the
  script's callbacks and the history (`launched.InterceptedFit.initial_epoch`).

* `segtrain run --jobs J`: J drivers, one per lane, share lane 0's oracle through
  KerasTuner's own chief and workers (`segtrain.worker.kerastuner_lanes`).

Refused before anything trains: a tuner whose class overrides `run_trial` (its
own loop would train in the driver).
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import pickle
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from segtrain.errors import ScriptError
from segtrain.paths import RunPaths
from segtrain.state.atomic import write_bytes
from segtrain.worker import kerastuner_lanes, protocol
from segtrain.worker.optimize import TakenOver, next_request


@dataclass
class SearchCalls(TakenOver):
    """Takes over `BaseTuner.__init__` (a begun search reloads its project) and `BaseTuner.search`."""

    LIBRARY: ClassVar[str] = "keras_tuner"

    @contextlib.contextmanager
    def taken_over(self) -> Iterator[None]:
        from keras_tuner.src import utils  # deferred: an optional extra
        from keras_tuner.src.engine import base_tuner  # deferred: an optional extra, for a script that uses it

        init, search, save_json = base_tuner.BaseTuner.__init__, base_tuner.BaseTuner.search, utils.save_json
        base_tuner.BaseTuner.__init__ = self._init(init)
        base_tuner.BaseTuner.search = self._search(search)
        utils.save_json = _atomic(save_json)
        try:
            yield
        finally:
            base_tuner.BaseTuner.__init__ = init
            base_tuner.BaseTuner.search = search
            utils.save_json = save_json

    def _began(self) -> Path:
        """Where the search keeps that it began (the next `tuner.search` call's records)."""
        return RunPaths(self.run_dir).optimize_records(self.calls + 1)

    def _init(self, init: Callable[..., Any]) -> Callable[..., Any]:
        def taken(tuner: Any, *args: Any, **kwargs: Any) -> None:
            bound = inspect.signature(init).bind(tuner, *args, **kwargs)
            if self._began().is_dir():  # the driver began it: reload the project it keeps, never wipe it
                bound.arguments["overwrite"] = False
            init(*bound.args, **bound.kwargs)

        return taken

    def _search(self, search: Callable[..., Any]) -> Callable[..., Any]:
        def taken(tuner: Any, *fit_args: Any, **fit_kwargs: Any) -> None:
            from keras_tuner.src.engine.tuner import Tuner  # deferred: an optional extra
            from keras_tuner.src.tuners.hyperband import Hyperband  # deferred: an optional extra

            name = type(tuner).__name__
            # KerasTuner's own run_trial: build, then model.fit; Hyperband's sets the trial's epochs and
            # initial_epoch first (its build loads the earlier trial's best weights).
            if not isinstance(tuner, Tuner) or type(tuner).run_trial not in (Tuner.run_trial, Hyperband.run_trial):
                raise ScriptError(
                    f"{self.script}: {name} overrides run_trial(): its own loop would train outside segtrain's "
                    "workers. Under `segtrain run` a tuner trains through KerasTuner's own run_trial (build, "
                    "then model.fit); run this script with python."
                )
            self._began().mkdir(parents=True, exist_ok=True)
            self.calls += 1
            request = self.request()
            if request is None:
                return
            if isinstance(request, protocol.RunTrial):
                tuner.reload()  # the project as the driver saved it for this trial (this worker may be older)
                trial = _trial(tuner, request.number)
                own = type(tuner).run_trial  # Tuner's, or Hyperband's
                self.run_trial(request, lambda _: _returned(own(tuner, trial, *fit_args, **fit_kwargs)))
                return
            assert isinstance(request, protocol.Drive), request
            tuner.run_trial = types.MethodType(self._remote_run_trial, tuner)
            if request.lanes == 1:
                search(tuner, *fit_args, **fit_kwargs)
                return
            records = RunPaths(self.run_dir).optimize_records(self.calls)
            kerastuner_lanes.search(tuner, records, request, lambda: search(tuner, *fit_args, **fit_kwargs))

        return taken

    def _remote_run_trial(self, tuner: Any, trial: Any, *fit_args: Any, **fit_kwargs: Any) -> list[Any]:
        """The driver's `run_trial`: the trial runs in the parent's workers; their histories, as Keras' own."""
        import keras

        tuner.save()  # the trial's workers reload the project: the oracle with this trial, the tuner's state
        self.send(protocol.TrialRequest(int(trial.trial_id), self.calls))
        while True:
            request = next_request(self.receive)
            if isinstance(request, protocol.TrialCall):  # a KerasTuner trial calls nothing back: its values are on disk
                self.send(protocol.TrialAnswer(error=f"a KerasTuner trial has no {request.name}()"))
                continue
            assert isinstance(request, protocol.Returned), request
            if request.exception is not None:
                raise pickle.loads(base64.b64decode(request.exception))
            if request.error is not None:
                raise RuntimeError(request.error)
            results = []
            for result in request.results or []:
                if isinstance(result, dict) and set(result) == {"history"}:
                    history = keras.callbacks.History()
                    history.history = result["history"]
                    result = history
                results.append(result)
            return results


def _atomic(save_json: Callable[[Any, Any], str]) -> Callable[[Any, Any], str]:
    """KerasTuner's `save_json` (every file of its project: the oracle, each trial, each tuner), writing a local
    file whole or not at all: the trials' workers (and, with --jobs, the other lanes) read the project while
    the driver writes it."""

    def save(path: Any, obj: Any) -> str:
        if "://" in str(path):  # a remote file system (KerasTuner writes through tf.io.gfile): as KerasTuner does
            return save_json(path, obj)
        text = json.dumps(obj)
        write_bytes(Path(path), text.encode())
        return text

    return save


def _trial(tuner: Any, number: int) -> Any:
    """The oracle's trial `number`, as the driver saved it in the project."""
    for trial in tuner.oracle.trials.values():
        if int(trial.trial_id) == number:
            return trial
    raise ScriptError(f"KerasTuner's project in {tuner.project_dir} holds no trial {number}: was it overwritten?")


def _returned(results: Any) -> protocol.Returned:
    """What KerasTuner's `run_trial` returned (a history per execution, or metrics, or values), as JSON."""
    items = results if isinstance(results, list) else [results]
    found = []
    for item in items:
        if hasattr(item, "history") and isinstance(item.history, dict):
            item = {"history": {k: [float(v) for v in vs] for k, vs in item.history.items()}}
        elif isinstance(item, dict):
            item = {k: float(v) for k, v in item.items()}
        elif item is not None:
            item = float(item)
        found.append(item)
    return protocol.Returned(results=found)

"""A launched script's `study.optimize(...)`: Optuna's loop in one worker, each trial in workers of its own.

Under `segtrain run`, a script that calls `study.optimize(objective, n_trials=...)`
runs unmodified (Optuna's Keras example, for one). While it runs:

* `optuna.create_study(...)` keeps the study in the run: without `storage`, in
  SQLite at `RUN/study.db`; without `study_name`, under the script's name; and
  with `load_if_exists`, so that the same command goes on with the same study.
* The first worker that reaches `study.optimize` is told to drive it (`Drive`):
  Optuna's own `optimize` runs there, with its `n_trials`, `timeout`, `catch`
  and `callbacks`, and an objective that asks the parent to run each trial
  (`TrialRequest`) and, while it runs, makes the trial's calls (`suggest_*`,
  `report`, `should_prune`, `set_user_attr`, ...) on the study's real trial
  here, with the study's one sampler: the trials are those of one process.
* A worker the parent starts for a trial is told which (`RunTrial`): it calls
  the objective with a `RemoteTrial` whose every call the driver makes; the
  objective's `fit` calls are the stages of the trial's run directory
  (`RUN/trials/trial-NNNN`), in segments; what it returns or raises goes back
  (`Returned`), and the worker ends, never running the script past `optimize`.
* The same command after a kill -9: the trials this `optimize` call began that
  the study still records as running run first, as the same trials (their run
  directories resume from their checkpoints); then as many new ones as
  `n_trials` still asks. The sampler is saved after every draw (`trial asked`,
  each `suggest_*`) and loaded again, so that the trials after the crash are
  those of a run that was not interrupted.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import os
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from segtrain.errors import EXIT_RESUMABLE, ScriptError
from segtrain.paths import RunPaths
from segtrain.state.atomic import exclusive, read_json, write_bytes, write_json
from segtrain.worker import output
from segtrain.worker.protocol import (
    AtOptimize,
    Drive,
    Message,
    Returned,
    RunTrial,
    TrialAnswer,
    TrialCall,
    TrialRequest,
    decode_request,
)

# SQLite waits 5 s for another process's write by default; the processes of `run --jobs` write at once.
_SQLITE_WAITS = {"connect_args": {"timeout": 120}}


@dataclass
class TakenOver:
    """A library's search calls in a launched script, taken over (`taken_over`) where the script's text names it
    (`LIBRARY`: importing it costs up to a second, which no other script should pay).

    `run_dir`: the run's directory; `send`/`receive`: the worker's message pipe and
    stdin; `run_trial(request, outcome)`: runs `outcome` (given the trial's
    `RemoteTrial`) for a `RunTrial` and ends the worker with the `Returned` it
    gives (the worker's stages go under the request's run directory); `calls`:
    the search calls the script has made so far.
    """

    run_dir: Path
    script: Path
    send: Callable[[Message], None]
    receive: Callable[[], str]
    run_trial: Callable[[RunTrial, Callable[[Any], Returned]], None]
    calls: int = 0
    pending: RunTrial | None = None  # this worker's trial, of a search call the script has not reached yet
    LIBRARY: ClassVar[str] = ""

    def wanted(self) -> bool:
        try:
            return self.LIBRARY.encode() in self.script.read_bytes()
        except OSError:
            return False

    def taken_over(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def request(self) -> Drive | RunTrial | None:
        """What this worker does at the script's search call number `calls`: drive it, run one of its trials, or
        (None) return at once: its trial is a later call's, and this call's trials are all told already."""
        if self.pending is None:
            self.send(AtOptimize(self.calls))
            request = decode_request(self.receive())
        else:
            request, self.pending = self.pending, None
        if isinstance(request, RunTrial) and request.call > self.calls:
            self.pending = request
            return None
        assert isinstance(request, (Drive, RunTrial)), request
        return request


@dataclass
class OptimizeCalls(TakenOver):
    """Takes over `optuna.create_study` and `Study.optimize`."""

    studies: int = 0
    LIBRARY: ClassVar[str] = "optuna"

    @contextlib.contextmanager
    def taken_over(self) -> Iterator[None]:
        import optuna

        create, optimize = optuna.create_study, optuna.study.Study.optimize
        optuna.create_study = optuna.study.create_study = self._create_study(create)
        optuna.study.Study.optimize = self._optimize(optimize)  # type: ignore[method-assign]
        try:
            yield
        finally:
            optuna.create_study = optuna.study.create_study = create
            optuna.study.Study.optimize = optimize  # type: ignore[method-assign]

    def _create_study(self, create: Callable[..., Any]) -> Callable[..., Any]:
        import optuna

        def create_study(*args: Any, **kwargs: Any) -> Any:
            bound = inspect.signature(create).bind(*args, **kwargs)
            bound.apply_defaults()
            self.studies += 1
            if bound.arguments.get("study_name") is None:
                suffix = "" if self.studies == 1 else f"-{self.studies}"
                bound.arguments["study_name"] = self.script.stem + suffix
            bound.arguments["load_if_exists"] = True  # the same command goes on with the same study
            paths = RunPaths(self.run_dir)
            with exclusive(paths.study_lock):  # `run --jobs`'s processes at once: all but one would fail to create it
                if bound.arguments.get("storage") is None:
                    url = f"sqlite:///{paths.study_db.resolve()}"
                    bound.arguments["storage"] = optuna.storages.RDBStorage(url, engine_kwargs=_SQLITE_WAITS)
                return create(*bound.args, **bound.kwargs)

        return create_study

    def _optimize(self, optimize: Callable[..., Any]) -> Callable[..., Any]:
        def taken(study: Any, func: Callable[[Any], Any], *args: Any, **kwargs: Any) -> None:
            bound = inspect.signature(optimize).bind(study, func, *args, **kwargs)
            bound.apply_defaults()
            options = dict(bound.arguments)
            self.calls += 1
            if options.get("n_jobs", 1) != 1:
                raise ScriptError(
                    f"{self.script}: study.optimize(n_jobs={options['n_jobs']}): under `segtrain run` each trial "
                    "trains in worker processes of its own; leave n_jobs out, and give `segtrain run --jobs "
                    f"{options['n_jobs']}` for that many trials at once."
                )
            request = self.request()
            if isinstance(request, RunTrial):
                self.run_trial(request, lambda trial: returned(func(trial)))
            elif isinstance(request, Drive):
                if request.lane > 0:
                    output.mark_fresh()  # its trials' lines are shown; the script's top was lane 0's to show
                _Driver(self, study, func, self.calls, request).optimize(optimize, options)

        return taken


class _Driver:
    """The worker in which Optuna's loop runs: each trial it asks for runs in workers the parent starts.

    With `segtrain run --jobs J` (`Drive.lanes`), J drivers in J processes share the study: each goes on with
    its share of the trials an earlier command left running, then asks for its share of the new ones (Optuna's
    own way to search in many processes, one storage). The first (lane 0) then waits for the others, so that
    the script goes on after `optimize` with every trial told; the others end there.
    """

    def __init__(self, calls: OptimizeCalls, study: Any, func: Callable[[Any], Any], number: int, drive: Drive):
        self.calls, self.study, self.func, self.number, self.drive = calls, study, func, number, drive
        self.dir = RunPaths(calls.run_dir).optimize_records(number)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ledger = self.dir / f"lane-{drive.lane}.json"  # [trial, invocation] for each trial this lane began
        self.sampler = self.dir / ("sampler.pkl" if drive.lane == 0 else f"sampler-{drive.lane}.pkl")

    def optimize(self, optimize: Callable[..., Any], options: dict[str, Any]) -> None:
        import optuna

        if self.sampler.exists():  # the sampler as the interrupted run left it, after its last draw
            self.study.sampler = pickle.loads(self.sampler.read_bytes())
        elif self.drive.lane > 0:
            self.study.sampler.reseed_rng()  # a seeded sampler would draw lane 0's params again
        earlier = self._began_earlier()
        states = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        running = [n for n in earlier if n in states and states[n].state == optuna.trial.TrialState.RUNNING]
        for number in running[self.drive.lane :: self.drive.lanes]:  # interrupted: the same trials go on first
            self._finish(optuna.Trial(self.study, states[number]._trial_id), options)
        if options.get("n_trials") is not None:
            left = options["n_trials"] - len(earlier)
            options["n_trials"] = left // self.drive.lanes + (self.drive.lane < left % self.drive.lanes)
        if options.get("n_trials") is None or options["n_trials"] > 0:
            options["func"] = self._objective
            optimize(**options)
        lanes_done(self.dir, self.drive)

    def _began_earlier(self) -> list[int]:
        """The trials that earlier commands began in this `optimize` call, in every lane."""
        began = [entry for path in sorted(self.dir.glob("lane-*.json")) for entry in read_json(path)]
        return sorted(number for number, invocation in began if invocation != self.drive.invocation)

    def _finish(self, trial: Any, options: dict[str, Any]) -> None:
        """An interrupted trial, run again and told to the study as `optimize` tells one; then its callbacks."""
        import optuna

        try:
            values = self._run(trial)
            frozen = self.study.tell(trial, values)
        except optuna.TrialPruned:
            frozen = self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        except Exception as e:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            if not isinstance(e, tuple(options.get("catch") or ())):
                raise
            frozen = self.study.trials[trial.number]
        for callback in options.get("callbacks") or []:
            callback(self.study, frozen)

    def _objective(self, trial: Any) -> Any:
        """Optuna's objective in the driver: record the trial as this call's, and run it in the parent's workers."""
        began = read_json(self.ledger) if self.ledger.exists() else []
        write_json(self.ledger, [*began, [trial.number, self.drive.invocation]])
        self._save_sampler()
        return self._run(trial)

    def _run(self, trial: Any) -> Any:
        import optuna

        self.calls.send(TrialRequest(trial.number, self.number))
        while True:
            request = next_request(self.calls.receive)
            if isinstance(request, TrialCall):
                self.calls.send(self._call(trial, request))
                continue
            assert isinstance(request, Returned), request
            if request.pruned:
                raise optuna.TrialPruned()
            if request.exception is not None:
                raise pickle.loads(base64.b64decode(request.exception))
            if request.error is not None:
                raise RuntimeError(request.error)
            values = request.values or []
            return values[0] if len(values) == 1 else values

    def _call(self, trial: Any, call: TrialCall) -> TrialAnswer:
        """A trial's worker called `trial.<name>(...)` (or read it): made here, on the study's trial."""
        try:
            found = getattr(trial, call.name)
            if call.get:
                return _answer(TrialCall.KIND if callable(found) else found)
            value = found(*call.args, **call.kwargs)
            if call.name.startswith("suggest"):
                self._save_sampler()
            return _answer(value)
        except Exception as e:
            return TrialAnswer(error=f"{type(e).__name__}: {e}")

    def _save_sampler(self) -> None:
        try:
            write_bytes(self.sampler, pickle.dumps(self.study.sampler))
        except (pickle.PicklingError, TypeError, AttributeError):
            pass  # a sampler that does not pickle starts afresh on resume, as Optuna's own would


def lanes_done(records: Path, drive: Drive) -> None:
    """With lanes (`run --jobs`): say this one's share of a search call (its records: `records`) is told; lane 0
    waits for the others' (the script then goes on there alone), and the others end here."""
    if drive.lanes == 1:
        return
    write_json(records / f"lane-{drive.lane}.done", drive.invocation)
    if drive.lane > 0:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    for lane in range(1, drive.lanes):
        done = records / f"lane-{lane}.done"
        while not (done.exists() and read_json(done) == drive.invocation):
            time.sleep(0.2)  # its process ends the command where it fails: this one is stopped then


def next_request(receive: Callable[[], str]) -> Any:
    """The driver's next line from the parent; where there is none (the parent stopped the search: a signal, a
    trial that failed), the driver ends at once, resumable: the search keeps the trial running, for the same
    command to go on with."""
    line = receive()
    if not line:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_RESUMABLE)
    return decode_request(line)


def _answer(value: Any) -> TrialAnswer:
    if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):
        value = value.item()  # a NumPy scalar (should_prune's bool, a report's float)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return TrialAnswer(error=f"under `segtrain run` a trial's {type(value).__name__} does not reach its worker")
    return TrialAnswer(value=value)


def returned(outcome: Any = None, error: BaseException | None = None) -> Returned:
    """What a trial's objective returned (`outcome`) or raised (`error`), for the driver."""
    if error is None:
        values = list(outcome) if isinstance(outcome, (list, tuple)) else [outcome]
        return Returned(values=[float(v) for v in values])
    if type(error).__name__ == "TrialPruned":
        return Returned(pruned=True)
    try:
        pickled = base64.b64encode(pickle.dumps(error)).decode()
    except Exception:
        pickled = None
    return Returned(error=f"{type(error).__name__}: {error}", exception=pickled)

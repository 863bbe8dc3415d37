"""A waiting worker answers a sweep's questions about its script (`protocol.Question`).

A sweep's process asks the study for each trial, but the trial's params are
what the script's `search_space(trial)` returns, and importing the script
imports the framework. So the script runs here, in a worker that has it imported already
(forked from the zygote, or the spare waiting for its trial): `search_space`
gets a `RemoteTrial`, whose every call (`trial.suggest_float(...)`,
`trial.number`, ...) goes to the sweep's process, which makes it on the
study's real trial and answers. The sweep's process imports no framework.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from segtrain.training.script import TrainingScript
from segtrain.worker.protocol import Asked, Described, Message, Proposed, Question, TrialAnswer, TrialCall


class RemoteTrial:
    """Stands for the study's `optuna.Trial` in the sweep's process: attributes read there, methods called there."""

    def __init__(self, send: Callable[[Message], None], receive: Callable[[], str]):
        self._send, self._receive = send, receive

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        found = self._ask(TrialCall(name, [], {}, get=True))
        if found != TrialCall.KIND:  # not callable: its value
            return found
        return lambda *args, **kwargs: self._ask(TrialCall(name, list(args), kwargs))

    def _ask(self, call: TrialCall) -> Any:
        self._send(call)
        line = self._receive()
        if not line:  # the sweep gave up on this worker
            raise SystemExit(1)
        answer = TrialAnswer.decode(line)
        if answer.error is not None:
            raise RuntimeError(answer.error)
        return answer.value


def answer(question: Question, script: TrainingScript, send: Callable[[Message], None]) -> None:
    """Answer `question` about `script`: `Described`, or `Proposed` after the trial's calls."""
    if question.asked == Asked.DESCRIBE:
        send(Described(script.search_space is not None, getattr(script.module, "grid", None)))
        return
    if script.search_space is None:
        send(Proposed(error="the script defines no search_space(trial)"))
        return
    try:
        params = script.search_space(RemoteTrial(send, sys.stdin.readline))
    except Exception as e:
        send(Proposed(error=f"{type(e).__name__}: {e}"))
        return
    send(Proposed(params=params) if isinstance(params, dict) else Proposed(not_a_dict=type(params).__name__))

"""One trial of a sweep: its params, its run (segmented, in fresh workers), pruning, and its result in the study.

A trial is an ordinary run directory (`SWEEP_DIR/trials/trial-NNNN`), so
`segtrain report`, `status`, `resume` and `segtrain.load_model` work on it.
Its value is the best value of the metric over its epochs (as KerasTuner
scores a trial), and the epoch it was reached is recorded beside it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segtrain.errors import ConfigError, SegtrainError
from segtrain.outcomes import RunStatus
from segtrain.paths import RunPaths
from segtrain.runs import loop
from segtrain.search.claims import BEST_EPOCH_ATTR, ERROR_ATTR, PARAMS_ATTR, PRUNED_ATTR, Claim
from segtrain.search.config import SweepConfig
from segtrain.search.study import Pruner, SweepStudy
from segtrain.state import atomic
from segtrain.state.manifest import read_manifest
from segtrain.worker.pool import WorkerPool
from segtrain.worker.protocol import Asked, Failed, Proposed, Question, TrialAnswer, TrialCall

if TYPE_CHECKING:
    from optuna.trial import TrialState  # imported where a trial runs: `import segtrain` stays without Optuna


class MetricMissing(ConfigError):
    """`--metric` names a metric that training does not log."""


@dataclass
class Pruning:
    """After each epoch: report the metric to the trial, and stop the run there if the pruner says so."""

    trial: Any  # optuna.trial.Trial
    metric: str
    pruner: Pruner  # NONE: only report
    reported: set[int] = field(default_factory=set)  # epochs the study already has (a resumed trial's)

    def __call__(self, record: dict[str, Any]) -> str | None:
        logs, epoch = record.get("logs") or {}, int(record["epoch"])
        if self.metric not in logs:
            raise MetricMissing(
                f"--metric {self.metric} is not among what training logs ({', '.join(sorted(logs)) or 'nothing'}). "
                "Name one of those, e.g. --metric val_loss (validation data in load_data()) or --metric loss."
            )
        value = float(logs[self.metric])
        if not math.isfinite(value):
            return None  # the run stops on a NaN loss itself, and the trial fails
        if epoch not in self.reported:
            self.trial.report(value, epoch)
            self.reported.add(epoch)
        if self.pruner != Pruner.NONE and self.trial.should_prune():
            return f"pruned by Optuna's {self.pruner} pruner after epoch {epoch + 1} ({self.metric} {value:.4g})"
        return None


@dataclass(frozen=True)
class TrialResult:
    number: int
    state: TrialState  # COMPLETE, PRUNED, FAIL, or RUNNING (interrupted, resumable)
    value: float | None
    params: dict[str, Any]
    message: str
    exit_code: int = 0  # of the run: 75 stops the sweep (a signal), 2 a bad --metric


def trial_params(claim: Claim, script: Path, pool: WorkerPool) -> dict[str, Any]:
    """A taken-over trial's params as its run recorded them; a new trial's from the script's `search_space(trial)`,
    run in the worker that waits for the trial (`worker.questions`), its every call made here on the real trial."""
    manifest = read_manifest(RunPaths(claim.run_dir))
    if manifest is not None:
        return dict(manifest.config.get("params") or {})
    answer = pool.ask(Question(Asked.PROPOSE), partial(_call, claim.trial))
    if isinstance(answer, Failed):
        raise SegtrainError(f"{script}: `search_space(trial)` could not run: {answer.message}")
    assert isinstance(answer, Proposed)
    if answer.not_a_dict is not None:
        raise SegtrainError(
            f"{script}: `search_space(trial)` must return a dict of params, such as "
            f"{{'units': trial.suggest_int('units', 32, 256)}}. Received: {answer.not_a_dict}"
        )
    if answer.error is not None or answer.params is None:
        raise SegtrainError(f"{script}: `search_space(trial)` failed: {answer.error}")
    return dict(answer.params)


def _call(trial: Any, call: TrialCall) -> TrialAnswer:
    """The study's trial answers a call that search_space made on its stand-in in the worker."""
    try:
        found = getattr(trial, call.name)
        if call.get:
            value = TrialCall.KIND if callable(found) else found
        else:
            value = found(*call.args, **call.kwargs)
        json.dumps(value)
    except Exception as e:  # the trial's own error, or a value that cannot cross to the worker
        return TrialAnswer(error=f"trial.{call.name}: {type(e).__name__}: {e}")
    return TrialAnswer(value=value)


def run_trial(
    claim: Claim, cfg: SweepConfig, sweep: SweepStudy, pool: WorkerPool, hooks_for: Any, progress: bool
) -> TrialResult:
    """Train the claimed trial and tell the study how it ended; release its lock."""
    from optuna.trial import TrialState

    trial, number = claim.trial, claim.trial.number
    study = trial.study
    try:
        try:
            params = trial_params(claim, cfg.run.script, pool)
        except SegtrainError as e:
            return _fail(trial, {}, str(e))
        trial.set_user_attr(PARAMS_ATTR, params)
        reported = set(sweep.frozen(number).intermediate_values)  # a taken-over trial's epochs so far
        pruning = Pruning(trial, cfg.metric, cfg.pruner, reported=reported)
        try:
            outcome = loop.fit(cfg.trial_config(claim.run_dir, params), progress, hooks_for(pruning, claim))
        except MetricMissing as e:
            _fail(trial, params, str(e))
            return TrialResult(number, TrialState.FAIL, None, params, str(e), e.exit_code)
        except SegtrainError as e:
            return _fail(trial, params, str(e).splitlines()[0])
        if outcome.status == RunStatus.INTERRUPTED:
            return TrialResult(number, TrialState.RUNNING, None, params, outcome.message, outcome.exit_code)
        if outcome.status == RunStatus.FAILED:
            return _fail(trial, params, outcome.message)
        if outcome.pruned:  # now, or before an interruption: the run's stop checkpoint says so
            trial.set_user_attr(PRUNED_ATTR, outcome.message)
            study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
            return TrialResult(number, TrialState.PRUNED, None, params, outcome.message)
        value, best_epoch = best_value(claim.run_dir, cfg.metric, cfg.direction or "minimize")
        if value is None:
            return _fail(trial, params, f"no finite {cfg.metric} was logged")
        trial.set_user_attr(BEST_EPOCH_ATTR, best_epoch)
        study.tell(trial, value, skip_if_finished=True)
        return TrialResult(number, TrialState.COMPLETE, value, params, f"{cfg.metric} {value:.4g} (epoch {best_epoch})")
    finally:
        claim.lock.release()


def best_value(run_dir: Any, metric: str, direction: str) -> tuple[float | None, int | None]:
    """The best finite value of `metric` in the run's history, and its epoch (1-based)."""
    paths = RunPaths(run_dir)
    history = atomic.read_json(paths.history_json) if paths.history_json.exists() else {}
    values = [(v, i + 1) for i, v in enumerate(history.get(metric) or []) if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    pick = max if direction == "maximize" else min
    value, epoch = pick(values, key=lambda ve: ve[0])
    return value, epoch


def _fail(trial: Any, params: dict[str, Any], reason: str) -> TrialResult:
    from optuna.trial import TrialState

    trial.set_user_attr(ERROR_ATTR, reason)
    trial.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
    return TrialResult(trial.number, TrialState.FAIL, None, params, reason)

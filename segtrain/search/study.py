"""Opening the Optuna study of a sweep: its storage, sampler, pruner and direction.

The study is Optuna's own: a name in a storage (SQLite in the sweep directory
by default, or any database Optuna's RDB storage opens: PostgreSQL, MySQL).
Every process that opens the same storage and name shares its trials, which is
how several `segtrain sweep` processes, on one machine or many, work together.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from segtrain.errors import ConfigError
from segtrain.options import Choice
from segtrain.paths import SweepPaths


class Sampler(Choice):
    """Which Optuna sampler proposes the trials (`--sampler`)."""

    TPE = "tpe"
    RANDOM = "random"
    GRID = "grid"
    CMAES = "cmaes"


class Pruner(Choice):
    """Which Optuna pruner stops unpromising trials (`--pruner`); `none` trains every trial to the end."""

    MEDIAN = "median"
    HYPERBAND = "hyperband"
    NONE = "none"


class Direction(Choice):
    """Whether the study minimizes or maximizes the metric (`--direction`)."""

    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


OPEN_ATTEMPTS = 3  # opening a database that another machine is creating the tables of, just now
SAMPLERS = tuple(s.value for s in Sampler)
PRUNERS = tuple(p.value for p in Pruner)

# Metrics where more is better (Keras' names, with or without "val_"): the direction when none is given.
_HIGHER_IS_BETTER = re.compile(r"(accuracy|acc|auc|precision|recall|f1|f1_score|fbeta_score|iou|r2_score)$")


def default_direction(metric: str) -> str:
    """`maximize` for accuracy-like metrics, `minimize` for losses and errors."""
    return "maximize" if _HIGHER_IS_BETTER.search(metric.removeprefix("val_")) else "minimize"


def storage_url(sweep_dir: Path, storage: str | None) -> str:
    """The study's storage: `--storage`, else SQLite in the sweep directory."""
    return storage or f"sqlite:///{SweepPaths(Path(sweep_dir)).study_db.resolve()}"


def redacted(url: str) -> str:
    """`url` without its password, for messages and records."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def open_storage(url: str) -> Any:
    """Optuna's RDB storage at `url`; a ConfigError (exit 2) that says why where it cannot be opened."""
    import optuna
    from sqlalchemy.exc import ArgumentError

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}  # several sweep processes share one file
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (ImportError, ArgumentError) as e:
            error: Exception = e  # a missing driver, a malformed URL: trying again will not help
            break
        except Exception as e:  # SQLAlchemy's errors; machines that start together race to create the tables
            error = e
            if "://" not in url or attempt == OPEN_ATTEMPTS - 1:
                break
            time.sleep(1.0 + attempt)
    raise ConfigError(
        f"Cannot open the study storage {redacted(url)}: {type(error).__name__}: {str(error).splitlines()[0]}. "
        "Check the URL (e.g. sqlite:///study.db, postgresql://user:pass@host/db), that the server is up, "
        "and that its driver is installed (psycopg2 for PostgreSQL)."
    ) from None


def make_sampler(name: str, seed: int | None, grid: dict[str, list[Any]] | None) -> Any:
    import optuna

    if name == Sampler.TPE:
        # The next trial is asked for while the current one trains (and other jobs' train): it counts as a bad
        # result until it ends, so that TPE does not propose its neighbourhood again (Optuna's constant liar).
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == Sampler.RANDOM:
        return optuna.samplers.RandomSampler(seed=seed)
    if name == Sampler.GRID:
        if not grid:
            raise ConfigError(
                "--sampler grid needs the grid in the script: `grid = {'units': [32, 64], 'lr': [1e-3, 1e-2]}` "
                "(search_space(trial) then suggests from those values)."
            )
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == Sampler.CMAES:
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ConfigError("--sampler cmaes needs the cmaes package: pip install cmaes") from None
        return optuna.samplers.CmaEsSampler(seed=seed)
    raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}. Received: {name!r}")


def make_pruner(name: str, epochs: int) -> Any:
    import optuna

    if name == Pruner.MEDIAN:
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == Pruner.HYPERBAND:
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    if name == Pruner.NONE:
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--pruner must be one of {', '.join(PRUNERS)}. Received: {name!r}")


@dataclass
class SweepStudy:
    """An Optuna study with the storage it lives in (to take over a trial by its number)."""

    study: Any  # optuna.Study
    storage: Any  # optuna.storages.BaseStorage
    url: str

    def _trial_id(self, number: int) -> int:
        study_id = self.storage.get_study_id_from_name(self.study.study_name)
        return int(self.storage.get_trial_id_from_study_id_trial_number(study_id, number))

    def trial(self, number: int) -> Any:
        """The running trial `number`, to report to and tell as its owner (`optuna.trial.Trial`)."""
        import optuna

        return optuna.trial.Trial(self.study, self._trial_id(number))

    def frozen(self, number: int) -> Any:
        """Trial `number` as the storage has it now (`optuna.trial.FrozenTrial`)."""
        return self.storage.get_trial(self._trial_id(number))


def open_study(*, url: str, name: str, direction: str, sampler: Any, pruner: Any) -> SweepStudy:
    """Create the study, or load it with its trials; refuse one whose direction differs."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    storage = open_storage(url)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=cast(Literal["minimize", "maximize"], direction),
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    found = study.direction.name.lower()
    if found != direction:
        raise ConfigError(
            f"The study {name!r} in {redacted(url)} was created to {found} its metric; this sweep asks to "
            f"{direction} it. Use --direction {found}, another --study name, or --force to start over."
        )
    return SweepStudy(study, storage, url)

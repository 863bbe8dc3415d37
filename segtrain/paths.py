"""Every file segtrain writes, named in one place: a run's, a sweep's and a cross-validation's directory.

A leaf module (as submitit's `JobPaths`): it imports nothing of segtrain, so
every layer may import it. No path strings elsewhere.

A run directory (see README, "The run directory"):

    RUN_DIR/
      manifest.json     options, script path and SHA-256, versions, status
      script/model.py   a copy of the training script, the file whose SHA-256 the manifest records
      lock              pid of the process that owns the run (flock-ed)
      ckpt-000006/      a checkpoint after 6 epochs; complete once its
        model.keras       state.json is committed (last) and its checksums match
        state.json
      ckpt-000007.000012/  a checkpoint inside epoch 7, after 12 batches
      ckpt-000010-end/  the final model (after callbacks' on_train_end)
      epochs.jsonl      one line per epoch: time, memory, metrics (append-only)
      segments.jsonl    one line per segment: epochs, time, memory, boundary cost
      history.json      the merged Keras history, history.csv the same as CSV
      compiled/         compiled code the run's workers share (JAX), made with RUN_DIR's permissions
      stages/stage-2/   a launched script's second `fit` call, a run directory of its own (and so on)
      study.db, trials/trial-NNNN/, optimize-K/   a launched script's study.optimize: its study, a run
                        directory per trial (trials-K/ for its K-th search call), and per call the
                        trials each process began (lane-N.json) and its sampler

A sweep directory: `sweep.json`, `claims.lock`, `study.db` (the default
storage), `compiled/`, and one run directory per trial in
`trials/trial-NNNN`. A cross-validation's: `cv.json`, `compiled/` and one run
directory per fold in `folds/fold-K`.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

CKPT_PREFIX = "ckpt-"
TMP_PREFIX = ".tmp-"
RUN_MANIFEST = "manifest.json"
SWEEP_MANIFEST = "sweep.json"
CV_MANIFEST = "cv.json"


@dataclass(frozen=True)
class RunPaths:
    """Every path of a run directory."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / RUN_MANIFEST

    @property
    def compilation_cache(self) -> Path:
        """Compiled code its workers share (JAX's persistent cache): trusted code, so only ever under this directory."""
        return self.root / "compiled"

    @property
    def script_dir(self) -> Path:
        """Where the run keeps its copy of the training script, under the script's own file name."""
        return self.root / "script"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def epochs_log(self) -> Path:
        return self.root / "epochs.jsonl"

    @property
    def segments_log(self) -> Path:
        return self.root / "segments.jsonl"

    @property
    def history_json(self) -> Path:
        return self.root / "history.json"

    @property
    def history_csv(self) -> Path:
        return self.root / "history.csv"

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    def stage(self, number: int) -> Path:
        """The run directory of a launched script's `fit` call `number` (1-based): the first is this one."""
        return self.root if number == 1 else self.stages / f"stage-{number}"

    @property
    def trials(self) -> Path:
        return self.root / "trials"

    def trial(self, number: int, call: int = 1) -> Path:
        """The run directory of trial `number` of a launched script's search call number `call` (`study.optimize`,
        `tuner.search`: `segtrain.worker.optimize`): `trials/` for the first, `trials-<call>/` for later ones."""
        trials = self.trials if call == 1 else self.root / f"trials-{call}"
        return trials / f"trial-{number:04d}"

    @property
    def study_db(self) -> Path:
        """A launched script's study, where its `optuna.create_study` gives no storage."""
        return self.root / "study.db"

    @property
    def study_lock(self) -> Path:
        """Taken while a launched script's study is created or loaded: `run --jobs`'s processes create it at once."""
        return self.root / "study.lock"

    def optimize_records(self, call: int) -> Path:
        """What a launched script's `study.optimize` call number `call` keeps: the trials it began, its sampler."""
        return self.root / f"optimize-{call}"

    def search_records(self) -> list[Path]:
        """Everything a launched script's search keeps here (`--force` deletes it)."""
        found = [p for p in (self.study_db, self.study_lock, self.trials) if p.exists()]
        if not self.root.is_dir():
            return found
        return found + sorted([*self.root.glob("trials-*"), *self.root.glob("optimize-*")])

    def stage_count(self) -> int:
        """How many of the script's `fit` calls have a run directory (1 where only this one)."""
        number = 1
        while (RunPaths(self.stage(number + 1)).manifest).is_file():
            number += 1
        return number

    def checkpoint(self, epoch: int, batch: int = 0, final: bool = False) -> Path:
        name = f"{CKPT_PREFIX}{epoch:06d}"
        if batch:
            name += f".{batch:06d}"
        if final:
            name += "-end"
        return self.root / name

    def checkpoint_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.name.startswith(CKPT_PREFIX) and p.is_dir())

    def leftovers(self) -> list[Path]:
        """Temporary files and folders of writes that never committed."""
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if p.name.startswith(TMP_PREFIX)]


@dataclass(frozen=True)
class SweepPaths:
    """Every path of a sweep directory (`segtrain sweep`)."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / SWEEP_MANIFEST

    @property
    def compilation_cache(self) -> Path:
        """Compiled code its workers share (JAX's persistent cache): trusted code, so only ever under this directory."""
        return self.root / "compiled"

    @property
    def claims_lock(self) -> Path:
        """The lock under which one process at a time opens the sweep, claims a trial, asks the study."""
        return self.root / "claims.lock"

    @property
    def study_db(self) -> Path:
        """The study's SQLite database, where no other storage is given."""
        return self.root / "study.db"

    @property
    def trials(self) -> Path:
        return self.root / "trials"

    def trial(self, number: int) -> Path:
        """The run directory of trial `number`."""
        return self.trials / f"trial-{number:04d}"


@dataclass(frozen=True)
class CvPaths:
    """Every path of a cross-validation's directory (`segtrain cv`)."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / CV_MANIFEST

    @property
    def compilation_cache(self) -> Path:
        """Compiled code its workers share (JAX's persistent cache): trusted code, so only ever under this directory."""
        return self.root / "compiled"

    @property
    def folds(self) -> Path:
        return self.root / "folds"

    def fold(self, index: int) -> Path:
        """The run directory of fold `index` (0-based)."""
        return self.folds / f"fold-{index}"


def lock_holder(paths: RunPaths) -> int | None:
    """The pid written in the run's lock file, if any (alive or not)."""
    try:
        text = paths.lock.read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def is_locked(paths: RunPaths) -> bool:
    """Whether a live process holds the run's lock (without taking it; the lock itself is `runs.paths.RunLock`)."""
    if not paths.lock.exists():
        return False
    fd = os.open(paths.lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False

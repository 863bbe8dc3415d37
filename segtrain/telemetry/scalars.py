"""segtrain's telemetry as TensorBoard scalars (`--tensorboard DIR`), written by the run's parent process.

Everything goes to `DIR/segtrain/`, a run of its own beside the `train` and
`validation` runs of Keras' TensorBoard callback when the script logs to the
same DIR. The step is the number of epochs done, so the run's scalars line up
across segments, processes and resumes:

* each epoch `e` (0-based) at step `e + 1`: its seconds and memory;
* each segment at its boundaries: what the boundary before it cost, and its
  parts, at the step it started from; its seconds per epoch, slowdown, spare
  and the run's segmenting cost so far at the step it ended at.

Every (tag, step) is written once. A resume first reads what the event files
hold and writes what the run's logs have that they lack (a run started without
`--tensorboard`, or a parent killed between an epoch and its scalars), then
appends as it trains. Epochs that run again after a crash (those after the
newest checkpoint) keep the values of their first run: TensorBoard shows one
point per step, never two. The figures are those of `segtrain report`
(`segtrain.telemetry.figures`); the format is `segtrain.telemetry.event_file`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segtrain.options import AUTO
from segtrain.paths import RunPaths
from segtrain.state import atomic
from segtrain.telemetry.event_file import EventFileWriter, event_files, read_events
from segtrain.telemetry.figures import (
    SegmentCost,
    SegmentingCost,
    clean_pace,
    clean_seconds,
    slowdown,
    spare_lost_seconds,
    typical_seconds,
)
from segtrain.telemetry.logs import EpochRecord, newest_attempts

log = logging.getLogger(__name__)

# AUTO: --tensorboard auto: RUN_DIR/tensorboard, which moves with the run directory
OFF = "off"  # segtrain resume --tensorboard off: write no more
SUBFOLDER = "segtrain"  # the TensorBoard run segtrain writes, beside Keras' `train` and `validation`


def setting(value: str | Path | bool | None) -> str | None:
    """What `--tensorboard` (or `tensorboard=`) asks for, as a run's options keep it: `auto`, a folder, or None.

    True is `auto`; False, None and `off` are None (none written). A folder is
    kept absolute, so that a resume from another working directory goes on in it.
    """
    if value is True:
        return AUTO
    if value is None or value is False:
        return None
    text = str(value).strip()
    if text.lower() in (AUTO, OFF):
        return AUTO if text.lower() == AUTO else None
    return str(Path(text).expanduser().absolute()) if text else text


def for_run(value: str | None, run_dir: Path) -> str | None:
    """The setting of one run of a sweep or cross-validation: each run a TensorBoard run of its own.

    `auto` stays (each run's `RUN_DIR/tensorboard`); a folder gets one subfolder per run, named as the run's
    directory (`DIR/trial-0003/segtrain`, `DIR/fold-2/segtrain`): `tensorboard --logdir DIR` shows them all.
    """
    if value is None or value == AUTO:
        return value
    return str(Path(value) / Path(run_dir).name)


def open_log(value: str | None, paths: RunPaths, epochs_done: int) -> TensorBoardLog | None:
    """The run's TensorBoard log where its options ask for one, caught up with its logs to `epochs_done`."""
    if value is None:
        return None
    board = TensorBoardLog(log_dir(value, paths.root))
    board.catch_up(paths, epochs_done)
    return board


def catch_up(value: str | None, paths: RunPaths, epochs_done: int) -> None:
    """Write the scalars of a run that has no more to train (given `--tensorboard` after it finished)."""
    board = open_log(value, paths, epochs_done)
    if board is not None:
        board.close()


def log_dir(setting: str, run_dir: Path) -> Path:
    """The folder `--tensorboard` names (`auto`: the run directory's `tensorboard/`); segtrain writes in its
    `segtrain/` subfolder."""
    return run_dir / "tensorboard" if setting == AUTO else Path(setting).expanduser()


def epoch_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of one line of epochs.jsonl (at step epoch + 1)."""
    values = {
        "epoch/seconds": record.get("seconds"),
        "memory/rss_mb": record.get("rss_mb"),
        "memory/device_mb": record.get("device_mb"),
    }
    return {tag: float(v) for tag, v in values.items() if v is not None}


class TensorBoardLog:
    """The scalars of one run in `folder/segtrain`: once per (tag, step), whatever was written before."""

    def __init__(self, folder: Path):
        self.folder = folder / SUBFOLDER
        self.written: dict[str, set[int]] = {}  # the steps of each tag that the event files hold
        self.writer: EventFileWriter | None = None  # a new file, once there is something new to write
        self.failed = False  # a write failed (a full disk): telemetry never stops training, so it stops instead
        try:
            for path in event_files(self.folder):
                for event in read_events(path):
                    for tag in event.scalars:
                        self.written.setdefault(tag, set()).add(event.step)
        except OSError as e:
            self._fail(e)
        self.baseline: float | None = None  # the first segment's seconds per epoch: slowdown is against it
        self.run_clean: list[float] = []  # epochs no busy spare ran beside (figures.clean_seconds), so far
        self.costs: list[SegmentCost] = []  # each segment's, for the run's segmenting cost so far

    def catch_up(self, paths: RunPaths, epochs_done: int) -> None:
        """Write what the run's logs hold up to `epochs_done` (its newest checkpoint) and the event files lack.

        Epochs and segments after it will run (again) and are written as they end.
        """
        epochs = [r for r in atomic.read_lines_json(paths.epochs_log) if EpochRecord.from_json(r) is not None]
        for record in newest_attempts(epochs, lambda r: int(r["epoch"]))[0]:
            if record["epoch"] < epochs_done:
                self.epoch(record)
        for record in atomic.read_lines_json(paths.segments_log):
            if "start_epoch" in record and record.get("end_epoch", 0) <= epochs_done:
                self.segment(record)

    def epoch(self, record: Mapping[str, Any]) -> None:
        """An epoch ended (`record`: its line of epochs.jsonl)."""
        self._add(int(record["epoch"]) + 1, epoch_scalars(record))

    def segment(self, record: Mapping[str, Any]) -> None:
        """A segment ended (`record`: its line of segments.jsonl)."""
        seconds = [float(s) for s in record.get("epoch_seconds") or []]
        start, end = int(record.get("start_epoch", 0)), int(record.get("end_epoch", 0))
        if not seconds or end <= start:
            return  # stopped before it finished an epoch: nothing to tell
        spare = record.get("spare_cpu_seconds")
        self.run_clean += clean_seconds(seconds, spare)
        cost = SegmentCost.from_record(record, self.run_clean)
        self.costs.append(cost)
        typical = typical_seconds(seconds)
        self.baseline = self.baseline or typical
        boundary = {
            "boundary/seconds": cost.boundary.total,
            "boundary/start_seconds": record.get("start_seconds"),
            "boundary/clear_seconds": record.get("clear_seconds"),
            "boundary/load_seconds": record.get("load_seconds"),
            "boundary/save_seconds": record.get("save_seconds"),
            "boundary/retrace_seconds": cost.retrace_seconds,
            "boundary/other_seconds": cost.other_seconds,
            "boundary/prestart_cpu_seconds": record.get("prestart_cpu_seconds"),
        }
        total = SegmentingCost.of(self.costs)
        ended = {
            "segment/seconds_per_epoch": typical,
            "segment/slowdown": slowdown(typical, self.baseline),
            "segment/spare_cpu_seconds": None if spare is None else sum(spare),
            "segment/spare_lost_seconds": None
            if spare is None
            else spare_lost_seconds(seconds, spare, clean_pace(seconds, spare, self.run_clean)),
            "cost/seconds": total.seconds,
            "cost/fraction": total.fraction,
        }
        self._add(start, boundary)
        self._add(end, ended)

    def _add(self, step: int, scalars: Mapping[str, float | None]) -> None:
        new = {tag: float(v) for tag, v in scalars.items() if v is not None and step not in self.written.get(tag, ())}
        if not new or self.failed:
            return
        try:
            if self.writer is None:
                self.writer = EventFileWriter(self.folder)
            self.writer.add(step, new)
        except OSError as e:
            self._fail(e)
            return
        for tag in new:
            self.written.setdefault(tag, set()).add(step)

    def _fail(self, error: OSError) -> None:
        self.failed = True
        log.warning("No more TensorBoard scalars for this run: %s: %s", self.folder, error.strerror or error)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

"""A run directory as a run leaves it, written by a test: manifest.json, epochs.jsonl, segments.jsonl, checkpoints.

In the shapes a real `segtrain fit` writes (tests/test_report.py's slow test
checks that against a real run), so that leaks, crashes and resumes are exact
and report and status tests take milliseconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from segtrain.paths import RunPaths
from segtrain.state.atomic import file_digest


class FakeRun:
    """Writes the run directory a run would: epochs that slow down and grow within each segment (a leak that
    a boundary resets), with crashes, signals and checkpoints where a test asks for them."""

    def __init__(
        self,
        root: Path,
        epochs: int,
        segment: int,
        isolation: str = "process",
        device: bool = False,
        slope: float = 0.01,
        rss_slope: float = 5.0,
        start_seconds: float = 2.0,
        base: float = 0.2,
        first: float = 1.5,
    ):
        self.root, self.total, self.length, self.isolation = root, epochs, segment, isolation
        self.device, self.slope, self.rss_slope, self.start_seconds = device, slope, rss_slope, start_seconds
        self.base, self.first = base, first
        self.epoch_lines: list[dict] = []
        self.segment_lines: list[dict] = []
        self.pid = 1000

    def attempt(
        self,
        index: int,
        start: int,
        end: int,
        outcome: str | None = None,
        recorded: bool = True,
        stop_reason: str | None = None,
        loss: float | None = None,
    ) -> None:
        """Epochs [start, end) of segment `index` in one new process; its segments.jsonl line if `recorded`."""
        self.pid += 1
        seconds, rss = [], []
        for i, epoch in enumerate(range(start, end)):
            s = self.first if i == 0 else self.base + self.slope * i
            mb = 600 + self.rss_slope * i
            seconds.append(s)
            rss.append(mb)
            self.epoch_lines.append(
                {
                    "device_mb": 300 + 8 * i if self.device else None,
                    "device_peak_mb": 400 + 8 * i if self.device else None,
                    "epoch": epoch,
                    "logs": {"loss": 1.0 / (epoch + 1), "accuracy": 0.5},
                    "pid": self.pid,
                    "rss_mb": mb,
                    "samples_per_second": 128 / s,
                    "seconds": s,
                    "segment": index,
                    "steps": 4,
                }
            )
        if not recorded:
            return
        load, save = 0.3, 0.2
        process = self.isolation == "process"
        setup = {"start_seconds": self.start_seconds} if process or index == 0 else {"clear_seconds": 0.4}
        boundary = sum(setup.values()) + load + save
        train = sum(seconds) + 0.05
        previous = self.segment_lines[-1]["checkpoint"] if self.segment_lines else None
        line = {
            "boundary_reason": None,
            "boundary_seconds": boundary,
            "checkpoint": f"ckpt-{end:06d}",
            "end_epoch": end,
            "epoch_seconds": seconds,
            "final_logs": {"loss": loss if loss is not None else 1.0 / end, "accuracy": 0.5},
            "first_epoch_seconds": seconds[0],
            "index": index,
            "isolation": self.isolation,
            "load_seconds": load,
            "outcome": outcome or ("finished" if end == self.total else "boundary"),
            "peak_device_mb": 420.0 if self.device else None,
            "peak_rss_mb": max(rss),
            "pid": self.pid,
            "resumed_from": previous,
            "save_seconds": save,
            "start_epoch": start,
            "stop_reason": stop_reason,
            "train_seconds": train,
            "wall_seconds": train + boundary + 0.01,
            **setup,
        }
        if process:
            line.update(
                backend="tensorflow",
                data_deferred=False,
                device_runtime_before_takeover=index > 0,
                prestart_abandoned=False,
                prestarted=index > 0,
                warm_up_seconds=1.9 if index > 0 else None,
            )
        self.segment_lines.append(line)

    def segments(self, first: int, last: int) -> None:
        """Whole segments `first`..`last` (0-based), each in its own attempt."""
        for index in range(first, last + 1):
            self.attempt(index, index * self.length, min(self.total, (index + 1) * self.length))

    def checkpoint(self, epoch: int, batch: int = 0, final: bool = False, damaged: bool = False) -> Path:
        """A committed checkpoint after `epoch` epochs (and `batch` batches); `damaged`: a torn model file."""
        folder = RunPaths(self.root).checkpoint(epoch, batch, final)
        folder.mkdir(parents=True)
        model = folder / "model.keras"
        model.write_bytes(bytes(range(256)) * 4)
        files = {"model.keras": file_digest(model)}
        state = {
            "batch": batch,
            "epoch": epoch,
            "files": files,
            "final": final,
            "format": "keras",
            "outcome": "finished" if final else None,
            "segment": max(0, epoch - 1) // self.length,
            "sizes": {"model.keras": model.stat().st_size},
            "steps_per_epoch": 4,
            "stop_reason": None,
        }
        (folder / "state.json").write_text(json.dumps(state))
        if damaged:
            model.write_bytes(model.read_bytes()[:100])
        return folder

    def write(self, status: str = "finished", stop_reason: str | None = None, error: str | None = None) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        config = {
            "debug": False,
            "epochs": self.total,
            "export": None,
            "force": False,
            "format": "keras",
            "isolation": self.isolation,
            "keep": 2,
            "max_memory": None,
            "prestart": True,
            "run_dir": str(self.root),
            "save_every": None,
            "script": "leaky.py",
            "seed": 0,
            "segment": self.length,
            "signals": ["SIGTERM", "SIGINT", "SIGUSR1"],
        }
        manifest = {
            "config": config,
            "created": time.time() - 600,
            "data_seed": 0,
            "epochs_done": self.segment_lines[-1]["end_epoch"] if self.segment_lines else 0,
            "error": error,
            "host": "test",
            "pid": 4242,
            "script": {"path": str(self.root / "leaky.py"), "sha256": "0" * 64},
            "segtrain_version": "0.1.0",
            "status": status,
            "stop_reason": stop_reason,
            "updated": time.time(),
            "versions": {"python": "3", "segtrain": "0.1.0"},
        }
        (self.root / "manifest.json").write_text(json.dumps(manifest))
        (self.root / "epochs.jsonl").write_text("".join(json.dumps(e) + "\n" for e in self.epoch_lines))
        (self.root / "segments.jsonl").write_text("".join(json.dumps(s) + "\n" for s in self.segment_lines))
        return self.root

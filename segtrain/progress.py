"""The one progress bar of a run: all epochs, with segment, seconds per epoch and slowdown."""

from __future__ import annotations

import statistics
from typing import Any


class RunProgress:
    """A tqdm bar over every epoch of the run (not one per segment)."""

    def __init__(self, total: int, done: int, segments: int, enabled: bool = True):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=done, unit="epoch", desc="segtrain", disable=not enabled,
                        dynamic_ncols=True, leave=True)
        self.segments = segments
        self.baseline: float | None = None  # median s/epoch of the first segment seen
        self.current: list[float] = []
        self.segment = -1

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") != "epoch":
            return
        if event["segment"] != self.segment:
            if self.current and self.baseline is None:
                self.baseline = _typical(self.current)
            self.segment, self.current = event["segment"], []
        self.current.append(event["seconds"])
        typical = _typical(self.current)
        postfix = {"segment": f"{self.segment + 1}/{self.segments}", "s/epoch": f"{typical:.2f}"}
        if self.baseline:
            postfix["slowdown"] = f"{typical / self.baseline:.2f}"
        loss = event.get("logs", {}).get("loss")
        if loss is not None:
            postfix["loss"] = f"{loss:.4g}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def on_segment(self, record: dict[str, Any]) -> None:
        """A segment ended; `record` is its line of segments.jsonl."""

    def close(self) -> None:
        self.bar.close()


def _typical(seconds: list[float]) -> float:
    """Median seconds per epoch, leaving out a segment's first epoch (tracing) when there are others."""
    rest = seconds[1:] if len(seconds) > 1 else seconds
    return statistics.median(rest)

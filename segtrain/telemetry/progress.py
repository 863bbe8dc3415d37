"""The one progress bar of a run: all epochs, with segment, seconds per epoch and slowdown.

It also watches the run as it goes (segtrain.telemetry.trends) and warns, once per
segment and kind, when time per epoch or memory climbs steadily within a
segment, and once per run when boundaries cost more than a few percent of
training time. Warnings go above the bar (tqdm.write) so they do not break
it, or to the log when the bar is off.

The bar and its warnings are on stderr, always: stdout is the script's (its
workers' lines, `segtrain.worker.output`), and holds nothing of the bar when it
is redirected.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any

from segtrain.outcomes import SegmentOutcome
from segtrain.telemetry import trends
from segtrain.telemetry.figures import SegmentCost, slowdown, typical_seconds

log = logging.getLogger("segtrain")


@dataclass
class _SegmentSeries:
    """The epochs seen so far of the segment that is training."""

    index: int
    start_epoch: int
    seconds: list[float] = field(default_factory=list)
    rss_mb: list[float | None] = field(default_factory=list)
    device_mb: list[float | None] = field(default_factory=list)
    warned: set[trends.FindingKind] = field(default_factory=set)


class RunProgress:
    """A tqdm bar over every epoch of the run (not one per segment), and the run's live warnings."""

    def __init__(
        self,
        total: int,
        done: int,
        segments: int | None,
        enabled: bool = True,
        thresholds: trends.Thresholds = trends.DEFAULT,
    ) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=total,
            initial=done,
            unit="epoch",
            desc="segtrain",
            file=sys.stderr,
            disable=not enabled,
            dynamic_ncols=True,
            leave=True,
        )
        self.enabled = enabled
        self.total = total
        self.segments = segments
        self.thresholds = thresholds
        self.baseline: float | None = None  # s/epoch of the first segment seen
        self.series: _SegmentSeries | None = None
        self.costs: list[SegmentCost] = []
        self.segment_length: int | None = None
        self.boundary_warned = False
        self.warnings: list[trends.Finding] = []  # every finding warned about, for callers and tests

    def on_epoch(self, event: dict[str, Any]) -> None:
        """An epoch ended (`event` is its line of epochs.jsonl): move the bar and check for climbs."""
        series = self.series
        if series is None or event["segment"] != series.index:
            series = self._new_segment(event)
        series.seconds.append(event["seconds"])
        series.rss_mb.append(event.get("rss_mb"))
        series.device_mb.append(event.get("device_mb"))
        typical = typical_seconds(series.seconds)
        of = f"/{self.segments}" if self.segments else ""
        postfix = {"segment": f"{series.index + 1}{of}", "s/epoch": f"{typical:.3g}"}
        if self.baseline and len(series.seconds) > 1:  # a first epoch alone is tracing, not a slowdown
            postfix["slowdown"] = f"×{slowdown(typical, self.baseline):.2f}"
        if event.get("rss_mb") is not None:
            postfix["RSS"] = f"{event['rss_mb']:.0f}MB"
        loss = event.get("logs", {}).get("loss")
        if loss is not None:
            postfix["loss"] = f"{loss:.4g}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)
        self._check_climbs(series)

    def _new_segment(self, event: dict[str, Any]) -> _SegmentSeries:
        if self.series is not None and self.series.seconds and self.baseline is None:
            self.baseline = typical_seconds(self.series.seconds)
        self.series = _SegmentSeries(event["segment"], event["epoch"])
        return self.series

    def _check_climbs(self, s: _SegmentSeries) -> None:
        for finding in trends.segment_findings(
            s.seconds, s.rss_mb, s.device_mb, s.index, s.start_epoch, self.thresholds
        ):
            if finding.kind not in s.warned:
                s.warned.add(finding.kind)
                self._warn(finding)

    def on_segment(self, record: dict[str, Any]) -> None:
        """A segment ended; `record` is its line of segments.jsonl. Checks what the boundaries cost."""
        if record.get("end_epoch", 0) <= record.get("start_epoch", 0):
            return  # stopped before finishing an epoch: nothing to learn from
        if self.baseline is None and record.get("epoch_seconds"):
            self.baseline = typical_seconds(record["epoch_seconds"])
        if record.get("outcome") == SegmentOutcome.BOUNDARY:
            # Such a segment ends at (index + 1) * --segment (segment.next_segment): that gives the length.
            self.segment_length = record["end_epoch"] // (record["index"] + 1)
        self.costs.append(SegmentCost.from_record(record))
        if self.boundary_warned or record.get("outcome") != SegmentOutcome.BOUNDARY:
            return
        finding = trends.boundary_cost(self.costs, self.segment_length or 1, self.total, self.thresholds)
        if finding is not None:
            self.boundary_warned = True
            self._warn(finding)

    def _warn(self, finding: trends.Finding) -> None:
        self.warnings.append(finding)
        if self.enabled and not self.bar.disable:
            self.bar.write(f"segtrain: warning: {finding.message}", file=sys.stderr)
        else:
            log.warning(finding.message)

    def close(self) -> None:
        """Close the bar (the warnings stay in `warnings`)."""
        self.bar.close()

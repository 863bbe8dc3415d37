"""The run's own records beside its checkpoints: segments.jsonl, and the history derived from a checkpoint."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from segtrain.paths import RunPaths
from segtrain.state import atomic
from segtrain.state.checkpoint import STATE_FILE
from segtrain.state.checkpoint_state import read_state


def append_segment(paths: RunPaths, record: dict[str, Any]) -> None:
    """One line of segments.jsonl (append-only, fsync-ed)."""
    atomic.append_line(paths.segments_log, json.dumps(record, sort_keys=True))


def write_history(paths: RunPaths, ckpt_path: Path) -> None:
    """history.json and history.csv, derived from a checkpoint's state (the one source of truth)."""
    history = read_state(ckpt_path / STATE_FILE).history
    atomic.write_json(paths.history_json, history)
    keys = sorted(history)
    rows = max((len(v) for v in history.values()), default=0)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["epoch", *keys])
    for i in range(rows):
        writer.writerow([i, *(history[k][i] if i < len(history[k]) else "" for k in keys)])
    atomic.write_bytes(paths.history_csv, out.getvalue().encode())

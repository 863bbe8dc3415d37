"""`segtrain verify RUN_DIR`: every checkpoint's every byte against the checksums its state.json records.

`segtrain status` and `segtrain ls` check the recorded sizes only (a 1 GB
model is not read at each status); resuming checks every byte of the
checkpoint it goes on from. This reads them all, in any process: files only,
never a framework.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from segtrain.errors import EXIT_FAILED, EXIT_OK
from segtrain.state import checkpoint
from segtrain.state.manifest import read_run


@dataclass(frozen=True)
class Verified:
    """One checkpoint: complete, or damaged and why."""

    name: str
    complete: bool
    why: str  # what is damaged; "" where complete


@dataclass(frozen=True)
class Verification:
    """What `segtrain verify` found in a run directory (and `segtrain.verify` returns)."""

    run_dir: str
    checkpoints: list[Verified]  # every ckpt-* folder, by name (oldest first)
    resume_from: str | None  # the newest complete checkpoint: where resuming goes on from

    @property
    def damaged(self) -> list[Verified]:
        return [c for c in self.checkpoints if not c.complete]

    @property
    def exit_code(self) -> int:
        """0 where every checkpoint is complete (or there is none yet), 1 where any is damaged."""
        return EXIT_FAILED if self.damaged else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return dict(asdict(self), exit_code=self.exit_code)


def verify_checkpoints(run_dir: Path | str) -> Verification:
    """Check every checkpoint of the run in `run_dir` byte by byte (a ConfigError, exit 2, where it holds no run)."""
    paths, _ = read_run(run_dir)
    found = [Verified(path.name, *checkpoint.is_complete(path)) for path in paths.checkpoint_dirs()]
    complete = {c.name for c in found if c.complete}
    newest = next((c.path.name for c in reversed(checkpoint.committed(paths)) if c.path.name in complete), None)
    return Verification(str(paths.root), found, newest)


def summary(v: Verification) -> str:
    """The last line `segtrain verify` prints: is anything damaged, and where resuming goes on from."""
    if not v.checkpoints:
        return "No checkpoint yet: a resume starts from the beginning."
    start = f"a resume goes on from {v.resume_from}" if v.resume_from else "none is complete: a resume starts over"
    if not v.damaged:
        return f"All {len(v.checkpoints)} checkpoints are complete; {start}."
    names = ", ".join(c.name for c in v.damaged)
    return f"{len(v.damaged)} of {len(v.checkpoints)} checkpoints damaged ({names}); {start}."

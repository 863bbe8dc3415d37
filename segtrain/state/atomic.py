"""Durable file writes: temporary name, fsync, `os.replace`, fsync the directory.

A reader never sees a half-written file under its final name, and a file that was
replaced survives a power loss. Replacing by remove-then-rename is never done.
Processes that must take turns take `exclusive(path)`.
"""

from __future__ import annotations

import fcntl
import json
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """One process at a time (flock on `path`, created where missing; the kernel lets it go when its holder dies)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (new names, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name(path: Path) -> Path:
    """The temporary sibling of `path`, keeping its suffixes (Keras checks them)."""
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically and durably."""
    tmp = tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync it: an append-only log that survives a crash.

    A crash can leave at most a truncated last line, which readers skip.
    """
    with open(path, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_lines_json(path: Path) -> list[dict]:
    """Read an append-only JSON-lines log, skipping a torn last line."""
    if not path.exists():
        return []
    records = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return records


def file_digest(path: Path) -> str:
    """A checksum of the file's bytes, named by its algorithm: `crc32:<8 hex digits>`.

    CRC-32, as TensorFlow's own checkpoints keep per tensor: it catches torn
    writes and flipped bits, which is what a checkpoint needs, at 2-3 GB/s
    (SHA-256 manages ~1 GB/s, 0.6 s per save of a 586 MB checkpoint).
    """
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return f"crc32:{crc:08x}"

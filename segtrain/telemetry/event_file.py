"""TensorBoard event files of scalars, written and read without TensorFlow, tensorboard or protobuf.

The parent of a process-isolated run imports no framework, and TensorBoard's
own writer pulls in numpy and hundreds of modules (~0.2 s), so segtrain writes
the format itself. It is small and frozen: an event file is a TFRecord file,

    uint64 length | uint32 masked CRC-32C of length | data | uint32 masked CRC-32C of data   (little-endian)

and each record's data is an `Event` protocol buffer, of which scalars use

    Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
    Summary { repeated Value value = 1; }
    Value   { string tag = 1; float simple_value = 2; }

A file starts with an event whose `file_version` is "brain.Event:2". TensorBoard
reads every file in a folder whose name contains "tfevents", in name order.
tests/test_tensorboard.py reads what this writes with tensorboard's own reader.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

FILE_VERSION = "brain.Event:2"
FILE_MARKER = "tfevents"


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`, the checksum TFRecord files use."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C: rotated right by 15 bits, plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """`data` framed as one TFRecord."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


# -- protocol buffer encoding, the few fields above ----------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_event(wall_time: float, step: int, scalars: Mapping[str, float] | None = None, version: str = "") -> bytes:
    """An `Event` with `scalars` (tag -> value) as its summary, or the file's `version` line."""
    if step < 0:
        raise ValueError(f"a step is a count of epochs, never negative: {step}")
    out = _varint(1 << 3 | 1) + struct.pack("<d", wall_time) + _varint(2 << 3) + _varint(step)
    if version:
        out += _bytes_field(3, version.encode())
    if scalars:
        values = b"".join(
            _bytes_field(1, _bytes_field(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", value))
            for tag, value in scalars.items()
        )
        out += _bytes_field(5, values)
    return out


# -- reading back what was written ---------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One event of a file: its step, wall time and scalars (tag -> value)."""

    wall_time: float
    step: int
    scalars: dict[str, float]
    version: str = ""


def _fields(data: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) of each field of a protocol buffer message; unknown ones are skipped."""
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        value: bytes | int
        if wire == 0:
            value, i = _read_varint(data, i)
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 2:
            size, i = _read_varint(data, i)
            value, i = data[i : i + size], i + size
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire} is not one that scalar events use")
        yield number, wire, value


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, i


def decode_event(data: bytes) -> Event:
    """The step, wall time and `simple_value` scalars of an `Event` (other kinds of values are left out)."""
    wall_time, step, version, scalars = 0.0, 0, "", {}
    for number, wire, value in _fields(data):
        if number == 1 and wire == 1 and isinstance(value, bytes):
            wall_time = struct.unpack("<d", value)[0]
        elif number == 2 and wire == 0 and isinstance(value, int):
            step = value
        elif number == 3 and isinstance(value, bytes):
            version = value.decode()
        elif number == 5 and isinstance(value, bytes):
            for _, _, item in _fields(value):
                tag, scalar = "", None
                for n, w, v in _fields(item if isinstance(item, bytes) else b""):
                    if n == 1 and isinstance(v, bytes):
                        tag = v.decode()
                    elif n == 2 and w == 5 and isinstance(v, bytes):
                        scalar = struct.unpack("<f", v)[0]
                if scalar is not None:
                    scalars[tag] = scalar
    return Event(wall_time, step, scalars, version)


def read_events(path: Path) -> list[Event]:
    """Every complete event of a file; reading stops at a torn or damaged record (a writer killed mid-write)."""
    data = path.read_bytes()
    events, i = [], 0
    while i + 12 <= len(data):
        length = data[i : i + 8]
        if struct.unpack("<I", data[i + 8 : i + 12])[0] != masked_crc(length):
            break
        size = struct.unpack("<Q", length)[0]
        body, end = data[i + 12 : i + 12 + size], i + 16 + size
        if end > len(data) or struct.unpack("<I", data[end - 4 : end])[0] != masked_crc(body):
            break
        try:
            events.append(decode_event(body))
        except (ValueError, IndexError, struct.error, UnicodeDecodeError):
            break
        i = end
    return events


def event_files(folder: Path) -> list[Path]:
    """The event files in `folder`, in the order TensorBoard reads them (by name)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if FILE_MARKER in p.name and p.is_file())


class EventFileWriter:
    """A new event file in `folder`, named as TensorBoard's own writers name theirs, appended event by event."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        stem = f"events.out.{FILE_MARKER}.{int(now):010d}.{socket.gethostname()}.{os.getpid()}"
        for n in range(1000):
            self.path = folder / f"{stem}.{n}"
            try:
                self.file = open(self.path, "xb")  # kept open until close()
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"no free event file name in {folder} for {stem}")
        self._write(encode_event(now, 0, version=FILE_VERSION))

    def add(self, step: int, scalars: Mapping[str, float]) -> None:
        """One event at `step` holding `scalars`; on disk (the OS's cache) when this returns."""
        self._write(encode_event(time.time(), step, scalars))

    def _write(self, event: bytes) -> None:
        self.file.write(record(event))
        self.file.flush()

    def close(self) -> None:
        self.file.close()

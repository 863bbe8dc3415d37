"""The JSON Schema of `segtrain report --json`, generated from the report's dataclasses.

`JSON_SCHEMA` is derived from `Report` (and `SegmentRow`, `Finding`) field by
field, so that a field added to the report is in the schema the moment it
exists. Types map as JSON does: int → integer, float → number, str → string,
bool → boolean, `X | None` → X or null, `list[X]` → array of X,
`dict[str, X]` → object of X, an enum → the strings of its values, a nested
dataclass → an object, recursively. Every field is required: `to_json()`
always writes them all. What a type cannot say (a lower bound, a number that
may be non-finite and so printed as null) is in `_EXTRA`, by field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from enum import Enum
from typing import Any, Union

from segtrain.telemetry.report import Report, SegmentRow
from segtrain.telemetry.trends import Finding

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_SCALARS: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}
_NUMBER_OR_NULL = {"type": ["number", "null"]}

#: JSON facts the Python types do not carry, merged into the generated schema of each field.
_EXTRA: dict[type, dict[str, dict[str, Any]]] = {
    Report: {
        name: {"minimum": 0}
        for name in ("epochs_total", "epochs_done", "segments_planned", "epochs_rerun", "spare_busy_epochs")
    },
    SegmentRow: {
        "index": {"minimum": 0},
        "start_epoch": {"minimum": 0},
        "end_epoch": {"minimum": 1},
        "epochs": {"minimum": 1},
        "spare_busy_epochs": {"minimum": 0},
        "final_logs": {"additionalProperties": _NUMBER_OR_NULL},  # a NaN loss is printed as null
    },
    Finding: {"ratio": _NUMBER_OR_NULL},  # a climb from 0 rises without bound: null
}


def schema_of(tp: Any) -> dict[str, Any]:
    """The JSON Schema of values of the type `tp` (a dataclass, an enum, a scalar, a list, dict or union of them).

    `Any` is any JSON value (a run's params): an empty schema.
    """
    if tp is Any:
        return {}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _object_schema(tp)
    if isinstance(tp, type) and issubclass(tp, Enum):
        values = [m.value for m in tp]
        return {"type": _scalar_name(type(values[0])), "enum": values}
    if isinstance(tp, type) and tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return _union_schema(args)
    if origin is list:
        return {"type": "array", "items": schema_of(args[0])}
    if origin is dict and args[0] is str:
        return {"type": "object", "additionalProperties": schema_of(args[1])}
    raise TypeError(f"no JSON Schema for the type {tp!r}")


def _object_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    extra = _EXTRA.get(cls, {})
    unknown = set(extra) - {f.name for f in fields}
    if unknown:
        raise TypeError(f"_EXTRA names fields that {cls.__name__} does not have: {sorted(unknown)}")
    properties = {f.name: {**schema_of(hints[f.name]), **extra.get(f.name, {})} for f in fields}
    return {"type": "object", "required": [f.name for f in fields], "properties": properties}


def _union_schema(args: tuple[Any, ...]) -> dict[str, Any]:
    """`X | None` (and unions of scalars): the types of each, with null where None is one."""
    options = [schema_of(a) for a in args if a is not type(None)]
    nullable = len(options) < len(args)
    if len(options) == 1 and set(options[0]) == {"type"}:
        names = [options[0]["type"]]
    elif all(set(o) == {"type"} for o in options):
        names = [o["type"] for o in options]
    else:
        return {"anyOf": options + ([{"type": "null"}] if nullable else [])}
    return {"type": [*names, "null"] if nullable else names[0] if len(names) == 1 else names}


def _scalar_name(tp: type) -> str:
    for base, name in _SCALARS.items():
        if issubclass(tp, base):
            return name
    raise TypeError(f"no JSON type for enum values of type {tp!r}")


#: JSON Schema (draft 2020-12) of `Report.to_json()`: `segtrain report --json` prints an object that validates.
JSON_SCHEMA: dict[str, Any] = {"$schema": _DRAFT, "title": "segtrain report", **schema_of(Report)}

"""How an option is declared: a dataclass field whose metadata holds its command-line flag (`option`).

`RunConfig`, `SweepConfig` and `CvConfig` declare each option once, as a field: its type, default and
validation in the dataclass, its flag names, help text and the commands that take it in `Flag`. The CLI
builds its typer parameters from these fields (`segtrain.cli.options`), and the Python API passes its keyword
arguments into the dataclass by the fields' names (`fields_of`). A leaf module: it imports nothing of segtrain.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from segtrain.errors import ConfigError

T = TypeVar("T")
AUTO = "auto"  # a value that asks segtrain to choose (`--segment auto`, `--tensorboard auto`)


class Choice(str, Enum):
    """A closed set of values: compares and serializes as its value (JSON on disk, `== "process"`)."""

    def __str__(self) -> str:
        return str(self.value)


C = TypeVar("C", bound=Choice)
FIELD_DEFAULT = type("FieldDefault", (), {"__repr__": lambda _: "FIELD_DEFAULT"})()  # `Flag.shown`: the field's


class Command(Choice):
    """The commands (and the API functions of the same names) that take options."""

    FIT = "fit"
    RUN = "run"
    RESUME = "resume"
    SWEEP = "sweep"
    CV = "cv"


EVERY = frozenset(Command)
NEW_RUNS = frozenset({Command.FIT, Command.RUN, Command.SWEEP, Command.CV})  # the commands that start runs


@dataclass(frozen=True)
class Flag:
    """A field's command-line flag: its names, help and the commands that take it.

    `cli`: the type typer parses where it is not the field's own (text that `parse` turns into the field's
    value, as `--signals TERM,USR1`); `shown`: the default typer shows and starts from where it is not the
    field's; `on_resume`: `resume` (the API) may change it; `per_call`: a request of one call (a `resume`
    starts it at its default, not at the run's value); `saved`: kept in the run's manifest; `before`: the field
    whose option it precedes in `--help`; `variants`: per command, what differs (`{Command.RUN: {"help": ...}}`).
    """

    names: tuple[str, ...] = ()
    help: str = ""
    commands: frozenset[Command] = frozenset()
    metavar: str | None = None
    cli: object = None
    parse: Callable[[Any], object] | None = None  # Any: typer's parsed value, of the type `cli` names
    shown: object = FIELD_DEFAULT
    on_resume: bool = False
    per_call: bool = False
    saved: bool = True
    before: str | None = None  # shown just before this field's option (a sweep's own among the run's)
    variants: Mapping[Command, Mapping[str, object]] = dataclasses.field(default_factory=dict)

    def of(self, command: Command) -> Flag:
        """This flag as `command` shows it."""
        changes: dict[str, Any] = dict(self.variants.get(command, {}))
        return dataclasses.replace(self, **changes)


def option(
    *names: str,
    default: object = dataclasses.MISSING,
    factory: Callable[[], object] | None = None,
    help: str = "",
    commands: frozenset[Command] = frozenset(),
    **flag: Any,  # the other fields of `Flag`, by name
) -> Any:  # as `dataclasses.field`: the field's value, whatever its type
    """A dataclass field with its `Flag`; no names: an option of the API alone (or of no command)."""
    metadata = {"flag": Flag(names, help, commands, **flag)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(field: dataclasses.Field[Any]) -> Flag:
    found = field.metadata.get("flag")
    return found if isinstance(found, Flag) else Flag()


def flags(cls: type, command: Command | None = None) -> Iterator[tuple[dataclasses.Field[Any], Flag]]:
    """The fields of the dataclass `cls` with their flags: all, or those `command` takes on its command line."""
    for field in dataclasses.fields(cls):
        flag = flag_of(field)
        if command is None or command in flag.commands:
            yield field, flag if command is None else flag.of(command)


def names_for(cls: type, command: Command) -> frozenset[str]:
    """The fields that `command` of the Python API takes (a `resume` also those it may change)."""
    return frozenset(
        f.name for f, flag in flags(cls) if command in flag.commands or (command == Command.RESUME and flag.on_resume)
    )


def fields_of(cls: type, command: Command, options: Mapping[str, object], function: str) -> dict[str, object]:
    """`options`, the keyword arguments of an API function, checked against the fields `command` takes."""
    return split(options, command, function, cls)[0]


def split(options: Mapping[str, object], command: Command, function: str, *classes: type) -> list[dict[str, object]]:
    """`options` shared out among the dataclasses `classes` (a sweep's own, then its runs'), each the fields
    `command` takes from it; a name that none takes is a TypeError, as Python says it."""
    rest = dict(options)
    parts = []
    for cls in classes:
        names = names_for(cls, command)
        parts.append({name: rest.pop(name) for name in list(rest) if name in names})
    if rest:
        raise TypeError(f"{function}() got an unexpected keyword argument {sorted(rest)[0]!r}")
    return parts


def segment_length(text: str) -> int | str:
    """`--segment`: a number of epochs or `auto` (RunConfig says what is wrong with anything else)."""
    text = text.strip().lower()
    try:
        return int(text)
    except ValueError:
        return text


def signal_names(text: str) -> tuple[str, ...]:
    """`--signals TERM,USR1`: the names, each with its SIG prefix."""
    names = tuple(n.strip().upper() for n in text.split(",") if n.strip())
    return tuple(n if n.startswith("SIG") else "SIG" + n for n in names)


def parse_params(items: list[str]) -> dict[str, Any]:
    """`--param NAME=VALUE` options as a dict: VALUE parsed as JSON (`3`, `0.1`, `true`, `[1, 2]`), else a string."""
    params: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(
                f"--param takes NAME=VALUE, such as --param units=64 or --param act=relu. Received: {item!r}"
            )
        try:
            params[name.strip()] = json.loads(text)
        except ValueError:
            params[name.strip()] = text
    return params


def defaults(cls: type) -> dict[str, Any]:
    """The default value of every field of the dataclass `cls` that has one."""
    found: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            found[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            found[f.name] = f.default_factory()
    return found


def member(choices: type[C], value: object, flag: str, name: str) -> C:
    """`value` as a member of the enum `choices`, or a ConfigError that names the flag and the choices."""
    try:
        return choices(value)
    except ValueError:
        allowed = ", ".join(str(c) for c in choices)
        received = f"{name}={value!r}" if name else repr(value)
        raise ConfigError(f"{flag} must be one of {allowed}. Received: {received}") from None


def positive(name: str, value: Any, alternative: str = "") -> None:
    """A ConfigError unless `value` is a positive integer, naming the option's flag."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        flag = "--" + name.replace("_", "-")
        also = f" {alternative}" if alternative else ""
        raise ConfigError(f"{flag} must be a positive integer{also}. Received: {name}={value!r}")


def per_call_defaults(cls: type) -> dict[str, Any]:
    """The defaults of the fields whose flag says `per_call`: a resume starts from these, not the run's."""
    found = defaults(cls)
    return {f.name: found[f.name] for f, flag in flags(cls) if flag.per_call}


def build(factory: Callable[..., T], options: Mapping[str, object]) -> T:
    """The dataclass from checked options: it validates the values itself."""
    return factory(**options)

"""The commands' options, built from the fields that declare them (`segtrain.options`), and `-v`/`-q`."""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, get_args, get_type_hints

import typer

from segtrain.config import RunConfig, Verbosity
from segtrain.errors import ConfigError
from segtrain.options import FIELD_DEFAULT, Command, Flag, flag_of, flags

F = TypeVar("F", bound=Callable[..., None])
_KIND = inspect.Parameter.KEYWORD_ONLY

VERBOSE = typer.Option(
    False,
    "--verbose",
    "-v",
    help="Show everything workers print, the backend's start-up lines too (they are in RUN/logs/ in any case).",
)
QUIET = typer.Option(
    False,
    "--quiet",
    "-q",
    help="Show only errors: no progress bar, no warnings, no worker's stderr (the script's stdout stays).",
)


def verbosity(verbose: bool, quiet: bool) -> Verbosity:
    """`-v`/`-q` as a verbosity; `--quiet` also keeps segtrain's own warnings off the terminal."""
    if verbose and quiet:
        raise ConfigError("--verbose and --quiet contradict each other: give one.")
    if quiet:
        logging.getLogger("segtrain").setLevel(logging.ERROR)
    return Verbosity.VERBOSE if verbose else Verbosity.QUIET if quiet else Verbosity.NORMAL


def argument(name: str, annotation: object, default: object = ..., **info: Any) -> inspect.Parameter:
    """A command's positional argument, for `takes(head=...)`; `info`: typer.Argument's (help, metavar)."""
    return inspect.Parameter(name, _KIND, default=typer.Argument(default, **info), annotation=annotation)


def takes(command: Command, *sources: type, head: Sequence[inspect.Parameter] = ()) -> Callable[[F], F]:
    """Give a command function the options that `command` takes from the fields of the dataclasses `sources`.

    typer reads a function's signature: this one is `head` (the arguments), then one typer Option per field
    whose `Flag` names `command` (its names, help, metavar and default as declared), in the fields' order;
    the verbosity field is `-v`/`-q`. The function takes them as `**given`; `values` turns them into the
    fields' values.
    """

    def apply(function: F) -> F:
        params, moved = list(head), []
        for cls in sources:
            hints = get_type_hints(cls)
            for field, flag in flags(cls, command):
                if field.name == "verbosity":
                    params += [_option("verbose", bool, VERBOSE), _option("quiet", bool, QUIET)]
                elif flag.names and flag.before is None:
                    params.append(_parameter(field, flag, hints[field.name]))
                elif flag.names:
                    moved.append((flag.before, _parameter(field, flag, hints[field.name])))
        for before, param in moved:  # each just before that field's option, in declaration order
            params.insert(next(i for i, p in enumerate(params) if p.name == before), param)
        function.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return function

    return apply


def values(command: Command, cls: type, given: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `cls` that `command` took, as the dataclass takes them (`None`: left out, on resume).

    Any: the values typer parsed, of the types the fields' flags declare; the dataclass checks them.
    """
    found: dict[str, Any] = {}
    for field, flag in flags(cls, command):
        if field.name == "verbosity":
            found["verbosity"] = verbosity(given["verbose"], given["quiet"])
        elif field.name in given and given[field.name] is not None:
            value = given[field.name]
            found[field.name] = flag.parse(value) if flag.parse is not None else value
        elif field.name in given and command != Command.RESUME:
            found[field.name] = None
    return found


def _parameter(field: dataclasses.Field[Any], flag: Flag, annotation: object) -> inspect.Parameter:
    shown = flag.shown
    if shown is FIELD_DEFAULT:  # the field's own default; none: a required option
        shown = _default(field)
    annotation = flag.cli or annotation
    if shown is None and type(None) not in get_args(annotation):
        annotation = annotation | None  # type: ignore[operator]
    info = typer.Option(shown, *flag.names, help=flag.help, metavar=flag.metavar)
    return inspect.Parameter(field.name, _KIND, default=info, annotation=annotation)


def _default(field: dataclasses.Field[Any]) -> object:
    if field.default is not dataclasses.MISSING:
        return field.default
    return ... if field.default_factory is dataclasses.MISSING else field.default_factory()


def _option(name: str, annotation: object, info: Any) -> inspect.Parameter:
    return inspect.Parameter(name, _KIND, default=info, annotation=annotation)


def option_of(cls: type, name: str) -> Any:  # Any: a typer OptionInfo, as typer.Option returns it
    """The typer Option of one field's flag, for a command that takes that option alone (`export --debug`)."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    return _parameter(field, flag_of(field), object).default


DEBUG = option_of(RunConfig, "debug")

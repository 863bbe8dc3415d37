"""The `segtrain` typer app, its consoles, and the one place where errors become exit codes.

Exit codes: 0 done, 2 bad input, 75 stopped by a signal and resumable, 1
anything else. The commands live in `segtrain.cli.train`, `.launch`, `.inspect`,
`.manage` and `.search`; each is a thin layer over the Python API.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from segtrain.errors import EXIT_OK, EXIT_RESUMABLE, SegtrainError
from segtrain.version import __version__


class _Commands(TyperGroup):
    """The commands in `--help` in the order a user meets them, whatever order their modules register them."""

    ORDER = ("fit", "run", "resume", "status", "report", "verify", "export", "ls", "sweep", "cv")

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: (self.ORDER.index(n) if n in self.ORDER else len(self.ORDER), n))


app = typer.Typer(
    cls=_Commands,
    help="Keep very long Keras training jobs fast, bounded in memory and resumable.\n\n"
    "Example: segtrain fit model.py --epochs 1000 --segment 50 --seed 0",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()


def _version(value: bool) -> None:
    if value:
        print(f"segtrain {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="segtrain: %(message)s")
    logging.getLogger("segtrain").setLevel(logging.INFO)  # segtrain's own news (a sweep's trials); -q: errors


def fail(e: SegtrainError) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(e.exit_code)


def _crash(e: Exception, debug: bool) -> NoReturn:
    """An error from inside training (a callback, the backend): say what, exit 1, keep the checkpoints."""
    if debug:
        traceback.print_exception(e)
    if isinstance(e, OSError):
        fail(
            SegtrainError(
                f"could not write {e.filename or 'to the run directory'}: {e.strerror or e}. "
                "The previous complete checkpoint is intact; free space or fix permissions, "
                "then run the same command again."
            )
        )
    fail(
        SegtrainError(
            f"training failed: {type(e).__name__}: {e}\nThe newest complete checkpoint is kept; "
            "fix the cause and run the same command again to resume"
            + ("." if debug else " (--debug shows the traceback).")
        )
    )


@contextmanager
def errors(debug: bool = False) -> Iterator[None]:
    """Turn what a command raises into a message and its exit code: a SegtrainError says what to fix."""
    try:
        yield
    except SegtrainError as e:
        fail(e)
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as e:  # anything from inside training
        _crash(e, debug)


def ending(status: str, exit_code: int, message: str, where: object) -> NoReturn:
    """The last line of a command that trained: how it ended, in colour, and its exit code."""
    style = "green" if exit_code == EXIT_OK else "yellow" if exit_code == EXIT_RESUMABLE else "red"
    err.print(f"[{style}]{status}[/]: {escape(message)} ({escape(str(where))})", highlight=False)
    raise typer.Exit(exit_code)


def command(fn: Callable[..., None]) -> Callable[..., None]:
    """Register `fn` as a command of the app (the modules of segtrain.cli call this)."""
    return app.command()(fn)


def main() -> None:
    app()

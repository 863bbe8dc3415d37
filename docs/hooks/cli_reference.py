"""MkDocs hook: reference/cli.md, generated from the typer app's own `--help` of every command.

Each command's section is what `segtrain COMMAND --help` prints (run in-process, 100 columns wide), so the
page cannot say anything the command does not. The commands come in the order `segtrain --help` lists them.
"""

from __future__ import annotations

import os
from typing import Any

from mkdocs.structure.files import File, Files

PAGE = "reference/cli.md"
WIDTH = 100

INTRO = """# Command line

Every command, as its own `--help` prints it (this page is generated from them when the site is built).
The guides say when to use which: [a long job](../guides/long-job.md), [resume and
preemption](../guides/resume.md), [sweeps and cv](../guides/sweeps.md), [unmodified
scripts](../guides/unmodified-scripts.md). Exit codes: [exit codes](exit-codes.md); messages:
[errors](errors.md).
"""


def _help(*args: str) -> str:
    from typer.testing import CliRunner

    from segtrain.cli import app

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)  # click's formatter reads it; rich is off (rich_markup_mode=None)
    try:
        result = CliRunner().invoke(app, [*args, "--help"], prog_name="segtrain", terminal_width=WIDTH)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    if result.exit_code != 0:
        raise RuntimeError(f"segtrain {' '.join(args)} --help exited {result.exit_code}: {result.output}")
    return result.output.rstrip()


def commands() -> list[str]:
    """The commands in the order `segtrain --help` shows them."""
    import typer

    from segtrain.cli import app

    group = typer.main.get_command(app)
    ctx = group.make_context("segtrain", [], resilient_parsing=True)
    return list(group.list_commands(ctx))  # type: ignore[attr-defined]


def markdown() -> str:
    parts = [INTRO, "## `segtrain`\n", f"```text\n{_help()}\n```\n"]
    for name in commands():
        parts += [f"## `segtrain {name}`\n", f"```text\n{_help(name)}\n```\n"]
    return "\n".join(parts)


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, PAGE, content=markdown()))
    return files

"""`segtrain export`, `segtrain ls` and `segtrain verify`: a run's model for use elsewhere, the runs under a folder,
and every byte of a run's checkpoints checked."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from segtrain import api
from segtrain.cli import options as opt
from segtrain.cli.app import command, err, errors, out
from segtrain.runs.verify import summary
from segtrain.search.listing import UNREADABLE, Listed, ago, human_size, list_runs


@command
def export(
    run_dir: Path = typer.Argument(..., help="Run directory, or a sweep's directory (its best trial)."),
    path: Path = typer.Argument(..., help="Where to write: a .keras file, or (any other path) a SavedModel directory."),
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", help="A complete checkpoint of the run, such as ckpt-000008 [default: the newest]."
    ),
    debug: bool = opt.DEBUG,
) -> None:
    """Write a run's model for use elsewhere: a .keras file, or a TF SavedModel directory for serving.

    Loads the newest complete checkpoint (or --checkpoint) as segtrain.load_model does: the run's script is
    imported (the run's own copy of it where the original is gone or changed).

    Example: segtrain export checkpoints/spirals spirals.keras
    """
    with errors(debug):
        done = api.export(run_dir, path, checkpoint=checkpoint)
    what = "a .keras file" if done.kind == "keras" else "a SavedModel directory"
    trained = f"{done.epoch} epoch{'s' if done.epoch != 1 else ''}"
    if done.batch:
        trained += f" and {done.batch} batch{'es' if done.batch != 1 else ''}"
    err.print(
        f"Exported {done.checkpoint} of {done.run_dir} (after {trained}) to {done.path}, {what}.",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@command
def ls(
    root: Path = typer.Argument(Path("checkpoints"), help="The folder to look in for runs, sweeps and cvs."),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON: one object per run."),
) -> None:
    """List the runs under ROOT: state, epochs done, last activity and size on disk.

    A sweep's or a cross-validation's directory is one row, for all its runs. A run recorded as running whose
    process is gone is "crashed" (segtrain status RUN says more).

    Example: segtrain ls checkpoints
    """
    with errors():
        found = list_runs(root)
    if as_json:
        print(json.dumps([entry.to_json() for entry in found], indent=1))
        return
    _render(found, root)


@command
def verify(
    run_dir: Path = typer.Argument(..., help="Run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print what was found as JSON."),
) -> None:
    """Check every byte of a run's checkpoints against the checksums recorded at saving: one line per checkpoint.

    status and ls check the recorded sizes only (cheap on a big model); resuming checks every byte of the
    checkpoint it goes on from. Exits 0 where every checkpoint is complete, 1 where one is damaged (the last line
    says which checkpoint a resume would use), 2 where RUN_DIR holds no run.

    Example: segtrain verify checkpoints/spirals
    """
    with errors():
        found = api.verify(run_dir)
    if as_json:
        print(json.dumps(found.to_json(), indent=1))
    else:
        for c in found.checkpoints:
            out.print(f"{c.name}  {'complete' if c.complete else 'damaged: ' + c.why}", highlight=False, markup=False)
        out.print(summary(found), highlight=False, markup=False, soft_wrap=True)
    if found.exit_code:
        raise typer.Exit(found.exit_code)


def _render(found: list[Listed], root: Path) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    if not found:
        err.print(f"No runs under {root}.", highlight=False, markup=False)
        return
    styles = {"running": "cyan", "finished": "green", "stopped": "green", "interrupted": "yellow"}
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("run", "kind", "state"):
        table.add_column(name)
    table.add_column("epochs", justify="right")
    table.add_column("last activity", justify="right")
    table.add_column("size", justify="right")
    for e in found:
        epochs = f"{e.epochs_done}/{e.epochs_total}" if e.epochs_total is not None else str(e.epochs_done)
        if e.runs_total is not None:
            epochs += f" ({e.runs_done}/{e.runs_total} {'trials' if e.kind == 'sweep' else 'folds'} done)"
        state = f"[{styles.get(e.state, 'red')}]{e.state}[/]"
        if e.state == UNREADABLE:
            state += f" {escape(e.error or '')}"
        table.add_row(escape(e.path), e.kind, state, epochs, ago(e.age_seconds), human_size(e.size_bytes))
    out.print(table)

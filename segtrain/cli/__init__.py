"""The `segtrain` command line: a thin typer layer over the Python API."""

from segtrain.cli import inspect, launch, manage, search, train  # register the commands
from segtrain.cli.app import app, main

__all__ = ["app", "inspect", "launch", "main", "manage", "search", "train"]

"""Opening a job's directory (a run's, a sweep's, a cross-validation's): the one place that decides.

Every kind opens its directory the same way: read its manifest; the same
settings go on (`keep`); other settings are refused, or with `--force` the old
work is deleted (`wipe`) and the directory made again (`new`). A directory
that holds work but no manifest, or a manifest that does not parse, is refused
too unless `--force` starts it over. Each kind says only what differs: how its
manifest reads, what counts as other settings, what its refusal says, what it
deletes (`runs.directory.open_run`, `search.config.open_sweep`, `search.cv_config.open_cv`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from segtrain.errors import ConfigError

M = TypeVar("M")


class Directory(ABC, Generic[M]):
    """One kind of job directory, as `open_directory` sees it; `M` is its manifest."""

    @abstractmethod
    def read(self) -> M | None:
        """The manifest there, None where there is none; ConfigError where it does not parse."""

    @abstractmethod
    def differences(self, existing: M) -> list[str]:
        """What differs between `existing` and the settings now, each as a phrase for the refusal."""

    @abstractmethod
    def refusal(self, differences: list[str]) -> str:
        """The message that refuses other settings without `--force`."""

    def orphaned(self) -> str | None:
        """Where the directory holds work but no manifest: the message that refuses it without `--force`."""
        return None

    @abstractmethod
    def wipe(self, existing: M | None) -> None:
        """`--force`: delete the old work (and its manifest); `existing`: its manifest, where it read."""

    def keep(self, existing: M) -> M:
        """The same settings: going on (record what may change, such as more epochs)."""
        return existing

    @abstractmethod
    def new(self) -> M:
        """Make the directory and write a new manifest; return it."""


def open_directory(directory: Directory[M], force: bool) -> M:
    """Create the directory's manifest, or check the settings now against it (`force`: start over where they differ)."""
    try:
        existing = directory.read()
    except ConfigError:
        if not force:
            raise
        directory.wipe(None)  # --force: a manifest that does not parse is work to start over
        existing = None
    if existing is not None:
        differences = directory.differences(existing)
        if not differences:
            return directory.keep(existing)
        if not force:
            raise ConfigError(directory.refusal(differences))
        directory.wipe(existing)
    elif (orphaned := directory.orphaned()) is not None:
        if not force:
            raise ConfigError(orphaned)
        directory.wipe(None)
    return directory.new()

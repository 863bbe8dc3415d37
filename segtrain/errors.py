"""Errors a user can cause, each with the exit code the CLI turns it into.

Exit codes (documented in the README, relied on by schedulers):

* 0  the run is done (finished, or stopped early by a callback);
* 1  anything else went wrong (a failed save, a corrupt run directory, a crash);
* 2  bad input: options, the training script, its data;
* 75 stopped by a signal, resumable (`EX_TEMPFAIL`: "try again").
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_RESUMABLE = 75


class SegtrainError(Exception):
    """Base class: a message meant for the user and an exit code."""

    exit_code = EXIT_FAILED


class ConfigError(SegtrainError):
    """An option value is invalid, or options contradict each other or the run."""

    exit_code = EXIT_BAD_INPUT


class ScriptError(SegtrainError):
    """The training script does not honour its contract (see `segtrain.training.script`)."""

    exit_code = EXIT_BAD_INPUT


class RunLockedError(SegtrainError):
    """Another live process holds the run directory."""


class CheckpointError(SegtrainError):
    """A checkpoint could not be written, or did not load back completely."""


class Preempted(SegtrainError):
    """Training stopped on a signal after saving a resumable checkpoint."""

    exit_code = EXIT_RESUMABLE


class PeersLost(SegtrainError):
    """Many hosts: another process of the run is gone, or never came; the run is resumable."""

    exit_code = EXIT_RESUMABLE

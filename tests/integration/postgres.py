"""A throwaway PostgreSQL cluster for the registry's integration tests.

`Cluster(root).init()` runs initdb (password auth on TCP, scram-sha-256), `start()` runs the
`postgres` server itself on a free loopback port (its unix socket in `root` too), and `stop()`
ends it by its own PID (SIGINT: a fast shutdown); `start()` again reuses the same data and
port, as a database coming back would. initdb refuses root: as root, every command runs as
the `postgres` user (else `nobody`), in a directory that user owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
from processes import free_port

PG_BINDIRS = [Path("/usr/lib/postgresql/15/bin")]
SUPERUSER = "mesh_admin"
PASSWORD = "pg-test-password-0123456789-secret"  # must never show in the registry's logs


def pg_binary(name: str) -> str | None:
    for directory in PG_BINDIRS:
        if (directory / name).is_file():
            return str(directory / name)
    return shutil.which(name)


def available() -> bool:
    return pg_binary("initdb") is not None and pg_binary("postgres") is not None


def _unprivileged_user() -> pwd.struct_passwd | None:
    """Who runs PostgreSQL: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL")


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log_path = root / "postgres.log"
        self.port = free_port()
        self.user = _unprivileged_user()
        self.process: subprocess.Popen[bytes] | None = None

    def _as_user(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _own(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def init(self) -> Cluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir()
        password_file = self.root / "pwfile"
        password_file.write_text(PASSWORD + "\n")
        for path in (self.root, self.sockets, password_file):
            self._own(path)
        command = [pg_binary("initdb"), "-D", str(self.data), "-U", SUPERUSER]
        command += ["--pwfile", str(password_file), "--auth-host=scram-sha-256"]
        command += ["--auth-local=scram-sha-256", "--no-sync", "--encoding=UTF8", "--locale=C"]
        subprocess.run(
            command,
            check=True,
            capture_output=True,
            cwd=self.root,
            **self._as_user(),
        )
        password_file.unlink()
        return self

    def start(self) -> Cluster:
        log = self.log_path.open("ab")
        self._own(self.log_path)
        command = [pg_binary("postgres"), "-D", str(self.data), "-p", str(self.port)]
        command += ["-k", str(self.sockets), "-c", "listen_addresses=127.0.0.1"]
        command += ["-c", "fsync=off", "-c", "max_connections=100"]
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            **self._as_user(),
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited {self.process.returncode}:\n{self.log()}")
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise TimeoutError(f"postgres did not accept connections in 30 s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # fast shutdown: clients are disconnected
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

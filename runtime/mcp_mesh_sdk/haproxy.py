"""HAProxy's runtime API (the admin socket): read server states, drain and enable servers.

The playbooks use this through `mcp-mesh-sdk lb` so that they read JSON instead of HAProxy text.
"""

from __future__ import annotations

import csv
import io
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.errors import OpsError

DEFAULT_SOCKET = Path("/run/haproxy/admin.sock")
_PSEUDO_SERVERS = {"FRONTEND", "BACKEND"}


@dataclass(frozen=True)
class ServerState:
    """One backend server as `show stat` reports it."""

    backend: str
    server: str
    status: str  # first word of HAProxy's status: UP, DOWN, DRAIN, MAINT, NOLB, ...
    status_detail: str  # HAProxy's full status, e.g. "UP 1/2" while a server goes down
    sessions: int  # current sessions (scur)
    weight: int
    check: str  # last health check result, e.g. L7OK
    address: str

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.server}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class AdminSocket:
    """One command per connection, as HAProxy's non-interactive mode expects."""

    def __init__(self, path: str | Path = DEFAULT_SOCKET, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.timeout = timeout

    def command(self, line: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.path))
                sock.sendall(line.encode() + b"\n")
                chunks: list[bytes] = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except FileNotFoundError as exc:
            raise OpsError(f"no HAProxy admin socket at {self.path}: is haproxy running?") from exc
        except PermissionError as exc:
            raise OpsError(
                f"not allowed to use {self.path}: run as root or the haproxy group"
            ) from exc
        except OSError as exc:
            raise OpsError(f"HAProxy admin socket {self.path}: {exc.strerror or exc}") from exc
        return b"".join(chunks).decode(errors="replace")


def parse_show_stat(text: str) -> list[ServerState]:
    """The servers in `show stat` CSV output (frontends and backend totals left out)."""
    lines = text.strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        raise OpsError(f"unexpected answer to 'show stat': {text.strip()[:200]!r}")
    reader = csv.DictReader(io.StringIO("\n".join([lines[0][2:], *lines[1:]])))
    servers: list[ServerState] = []
    for row in reader:
        if row.get("svname") in _PSEUDO_SERVERS or not row.get("pxname"):
            continue
        detail = (row.get("status") or "").strip()
        servers.append(
            ServerState(
                backend=row["pxname"],
                server=row["svname"],
                status=detail.split(" ")[0] if detail else "UNKNOWN",
                status_detail=detail,
                sessions=_int(row.get("scur")),
                weight=_int(row.get("weight")),
                check=(row.get("check_status") or "").strip(),
                address=(row.get("addr") or "").strip(),
            )
        )
    return servers


def _int(value: str | None) -> int:
    return int(value) if value and value.strip().isdigit() else 0


class LoadBalancer:
    """Server states and state changes through one admin socket."""

    def __init__(
        self,
        admin: AdminSocket,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = 0.1,
    ) -> None:
        self.admin = admin
        self.sleep = sleep
        self.clock = clock
        self.poll_interval = poll_interval

    def servers(self) -> list[ServerState]:
        return parse_show_stat(self.admin.command("show stat"))

    def find(self, name: str) -> ServerState:
        """A server by `backend/server` or by its name alone when that is unambiguous."""
        servers = self.servers()
        backend, _, server = name.rpartition("/")
        found = [s for s in servers if s.server == server and backend in ("", s.backend)]
        if not found:
            known = ", ".join(s.name for s in servers) or "none"
            raise OpsError(f"no server {name!r} in HAProxy (servers: {known})")
        if len(found) > 1:
            names = ", ".join(s.name for s in found)
            raise OpsError(f"server name {name!r} is ambiguous ({names}); give backend/server")
        return found[0]

    def set_state(self, server: ServerState, state: str) -> None:
        answer = self.admin.command(f"set server {server.name} state {state}").strip()
        if answer:
            raise OpsError(f"HAProxy refused 'set server {server.name} state {state}': {answer}")

    def set_weight(self, server: ServerState, weight: str) -> None:
        """`weight`: 0-256, or a percentage of the configured weight such as "25%"."""
        answer = self.admin.command(f"set server {server.name} weight {weight}").strip()
        if answer:
            raise OpsError(f"HAProxy refused 'set server {server.name} weight {weight}': {answer}")

    def weigh(self, name: str, weight: str) -> dict[str, Any]:
        """Set a server's weight (a canary under analysis gets a share of the traffic)."""
        server = self.find(name)
        self.set_weight(server, weight)
        current = self.find(server.name)
        return {"server": server.name, "status": current.status, "weight": current.weight}

    def drain(self, name: str, wait: float) -> dict[str, Any]:
        """Stop new sessions, wait (at most `wait` s) for current ones to end, then MAINT."""
        server = self.find(name)
        self.set_state(server, "drain")
        started = self.clock()
        current = self.find(server.name)
        while current.sessions > 0 and self.clock() - started < wait:
            self.sleep(self.poll_interval)
            current = self.find(server.name)
        self.set_state(server, "maint")
        return {
            "server": server.name,
            "drained": current.sessions == 0,
            "sessions_left": current.sessions,
            "waited_seconds": round(self.clock() - started, 3),
            "status": self.find(server.name).status,
        }

    def enable(
        self,
        name: str,
        wait_up: float | None = None,
        healthy: bool = False,
        weight: str | None = None,
    ) -> dict[str, Any]:
        """Back to READY; with `wait_up`, wait (bounded) until health checks report it UP.

        `healthy`: the caller has just checked the server itself, so mark it UP at once
        instead of waiting for `rise` checks; HAProxy's own checks still take it DOWN again
        after `fall` failures. `weight` is set before the server takes traffic (see `weigh`).
        """
        server = self.find(name)
        if weight is not None:
            self.set_weight(server, weight)
        self.set_state(server, "ready")
        if healthy:
            answer = self.admin.command(f"set server {server.name} health up").strip()
            if answer:
                raise OpsError(f"HAProxy refused 'set server {server.name} health up': {answer}")
        started = self.clock()
        current = self.find(server.name)
        if wait_up is not None:
            while current.status != "UP" and self.clock() - started < wait_up:
                self.sleep(self.poll_interval)
                current = self.find(server.name)
            if current.status != "UP":
                raise OpsError(
                    f"{server.name} is {current.status_detail or current.status}, not UP, "
                    f"after {wait_up:g} s (last check: {current.check or 'none'})"
                )
        return {
            "server": server.name,
            "status": current.status,
            "weight": current.weight,
            "waited_seconds": round(self.clock() - started, 3),
        }

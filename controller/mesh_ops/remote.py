"""Run commands on many hosts at once over SSH (Fabric) and say which host failed and why."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fabric import Connection
from invoke.exceptions import UnexpectedExit
from paramiko.ssh_exception import SSHException

from mesh_ops.inventory import Host

CONNECT_TIMEOUT = 5
CLI = "/opt/mcp-mesh/current/venv/bin/mcp-mesh-sdk"
SERVICE = "mcp-mesh-sdk.service"
T = TypeVar("T")


class HostFailed(Exception):
    """A host did not answer, or a command on it failed; the message says which and why."""


def connect(host: Host) -> Connection:
    kwargs: dict[str, Any] = {"banner_timeout": CONNECT_TIMEOUT, "auth_timeout": CONNECT_TIMEOUT}
    if host.key_file:
        kwargs["key_filename"] = host.key_file
    return Connection(
        host.address, user=host.user, port=host.port, connect_timeout=CONNECT_TIMEOUT,
        connect_kwargs=kwargs,
    )  # fmt: skip


def as_root(host: Host, command: str) -> str:
    return command if host.user == "root" else f"sudo -n {command}"


def run(connection: Connection, host: Host, command: str, **kwargs: Any) -> Any:
    """Run `command` (as root) on `host`; HostFailed with the reason when it cannot."""
    try:
        return connection.run(as_root(host, command), hide=kwargs.pop("hide", True), **kwargs)
    except UnexpectedExit as exc:
        detail = (exc.result.stderr or exc.result.stdout).strip()[-300:]
        raise HostFailed(
            f"{host.name}: `{command.split()[0]}` exited {exc.result.exited}: {detail}"
        ) from None
    except (OSError, SSHException, EOFError) as exc:
        raise HostFailed(f"{host.name} ({host.address}) did not answer over SSH: {exc}") from exc


def run_json(connection: Connection, host: Host, command: str) -> Any:
    result = run(connection, host, command)
    try:
        return json.loads(result.stdout)
    except ValueError as exc:
        raise HostFailed(f"{host.name}: `{command.split()[0]}` did not print JSON") from exc


def on_each(
    hosts: list[Host], work: Callable[[Connection, Host], T]
) -> list[tuple[Host, T | None, str | None]]:
    """`work` on every host at once; (host, result, None) or (host, None, why it failed)."""

    def one(host: Host) -> tuple[Host, T | None, str | None]:
        try:
            with connect(host) as connection:
                return host, work(connection, host), None
        except HostFailed as exc:
            return host, None, str(exc)
        except (OSError, SSHException, EOFError) as exc:
            return host, None, f"{host.name} ({host.address}) did not answer over SSH: {exc}"
        except Exception as exc:  # one host's surprise must not hide the others' answers
            return host, None, f"{host.name}: {type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(hosts)))) as pool:
        return list(pool.map(one, hosts))


# What `status` reads on a host, printed as one JSON object by the host's own python3.
STATUS_PROBE = """
import json, subprocess, sys, urllib.error, urllib.request
port, cli = sys.argv[1], sys.argv[2]
def get(path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s%s" % (port, path), timeout=3) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None
    except (OSError, ValueError) as e:
        return None, str(e)
active = subprocess.run(["systemctl", "is-active", "--quiet", "mcp-mesh-sdk.service"])
out = {"active": active.returncode == 0}
out["health"] = get("/health")
out["ready"] = get("/ready")[0]
out["detailed"] = get("/health/detailed")
listed = subprocess.run([cli, "incidents", "--json", "--open"], capture_output=True, text=True)
try:
    out["incidents"] = json.loads(listed.stdout)["incidents"]
except (ValueError, KeyError):
    out["incidents"] = None
print(json.dumps(out))
"""


def status_probe(connection: Connection, host: Host) -> Any:
    command = f"python3 -c {shlex.quote(STATUS_PROBE)} {host.agent_port} {CLI}"
    return run_json(connection, host, command)

"""Run commands on many hosts at once over SSH (Fabric) and say which host failed and why.

Commands run as the inventory says Ansible would: as `ansible_user`, through sudo to
`ansible_become_user` when `ansible_become` is set (with its password, never printed).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fabric import Connection
from invoke.exceptions import AuthFailure, UnexpectedExit
from paramiko.ssh_exception import SSHException

from mcp_mesh_sdk.constants import AGENT_ENV, AGENT_UNIT, CLI
from mesh_ops.inventory import Host

CONNECT_TIMEOUT = 5
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


def _execute(connection: Connection, host: Host, command: str, **kwargs: Any) -> Any:
    if not host.become:
        return connection.run(command, **kwargs)
    if host.become_password is None:  # passwordless sudo, or a clear refusal: never a prompt
        return connection.run(f"sudo -n -H -u {shlex.quote(host.become_user)} {command}", **kwargs)
    return connection.sudo(command, user=host.become_user, password=host.become_password, **kwargs)


def run(connection: Connection, host: Host, command: str, **kwargs: Any) -> Any:
    """Run `command` on `host` as the inventory says; HostFailed with the reason when it cannot."""
    try:
        return _execute(connection, host, command, hide=kwargs.pop("hide", True), **kwargs)
    except AuthFailure:
        raise HostFailed(f"{host.name}: sudo refused the become password") from None
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


# What `status` reads on an agent, printed as one JSON object by the release's own Python, in
# the shape Ansible registers the same reads in playbooks/fleet_status.yml (mesh_ops.status).
# The agent is reached as its env file says (local_agent: https and the mesh CA when TLS is on).
STATUS_PROBE = """
import json, subprocess, sys
from mcp_mesh_sdk.local_agent import local_agent
env_file, cli, unit = sys.argv[1:4]
try:
    agent, why = local_agent(env_file), ""
except Exception as e:
    agent, why = None, str(e)
def get(path):
    if agent is None:
        return {"status": -1, "msg": why}
    try:
        status, body = agent.call("GET", path, timeout=3)
    except Exception as e:
        return {"status": -1, "msg": str(e)}
    return {"status": status, "json": body}
def command(argv):
    try:
        done = subprocess.run(argv, capture_output=True, text=True)
    except OSError as e:
        return {"rc": 127, "stdout": "", "stderr": str(e)}
    return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
shown = command(["systemctl", "show", "--property=ActiveState,SubState", unit])["stdout"]
print(json.dumps({
    "service": dict(line.split("=", 1) for line in shown.splitlines() if "=" in line),
    "health": get("/health"),
    "ready": get("/ready"),
    "detailed": get("/health/detailed"),
    "incidents": command([cli, "incidents", "--json", "--open"]),
}))
"""


def status_probe(connection: Connection, host: Host) -> Any:
    python = CLI.parent / "python"  # the current release's venv, where mcp_mesh_sdk is
    argv = [str(python), "-c", STATUS_PROBE, str(AGENT_ENV), str(CLI), AGENT_UNIT]
    return run_json(connection, host, shlex.join(argv))


def balancer_probe(connection: Connection, host: Host) -> Any:
    """`mcp-mesh-sdk lb status --json` on the load balancer, as Ansible registers a command."""
    argv = [str(CLI), "lb"]
    socket = host.variables.get("mesh_loadbalancer_admin_socket")
    if isinstance(socket, str):
        argv += ["--socket", socket]
    result = run(connection, host, shlex.join([*argv, "status", "--json"]), warn=True)
    return {"rc": result.exited, "stdout": result.stdout, "stderr": result.stderr}

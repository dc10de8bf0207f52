"""Wait, boundedly and for all hosts at once, until every host's sshd answers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address

SSH_PORT = 22
PROBE_IDENT = b"SSH-2.0-mesh-lab-probe\r\n"


def ssh_banner(address: IPv4Address, timeout: float = 1.0) -> str | None:
    """The server's identification line (`SSH-2.0-...`), or None when nothing answers."""
    try:
        with socket.create_connection((str(address), SSH_PORT), timeout=timeout) as conn:
            conn.settimeout(timeout)
            banner = conn.recv(256).decode(errors="replace")
            conn.sendall(PROBE_IDENT)  # so sshd logs a plain disconnect, not a protocol error
    except OSError:
        return None
    return banner.strip() if banner.startswith("SSH-") else None


def wait_for_ssh(
    hosts: Iterable[tuple[str, IPv4Address]],
    timeout: float,
    still_booting: Callable[[str], bool] = lambda name: True,
) -> list[str]:
    """Names of the hosts whose sshd did not answer within `timeout` seconds.

    `still_booting(name)` lets the wait give up early on a host whose container has exited.
    """
    deadline = time.monotonic() + timeout

    def wait_one(host: tuple[str, IPv4Address]) -> str | None:
        name, address = host
        while time.monotonic() < deadline:
            if ssh_banner(address, timeout=0.5) is not None:
                return None
            if not still_booting(name):
                return name
            time.sleep(0.1)
        return name

    targets = list(hosts)
    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        results = list(pool.map(wait_one, targets))
    return [name for name in results if name is not None]

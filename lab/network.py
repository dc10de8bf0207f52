"""The lab's network: a bridge holding the controller's address, a namespace and veth per host.

Everything goes through `ip` (iproute2); its JSON output (`ip -j`) is what we read back.
"""

from __future__ import annotations

import json
import subprocess
from ipaddress import IPv4Address, IPv4Network, ip_network

from lab.errors import LabError

NETNS_DIR = "/run/netns"


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        message = done.stderr.strip() or done.stdout.strip()
        raise LabError(f"`ip {' '.join(args)}` failed: {message}")
    return done.stdout


def _json(*args: str) -> list[dict[str, object]]:
    text = ip("-j", *args).strip()
    return json.loads(text) if text else []


def link_names() -> list[str]:
    return [str(link["ifname"]) for link in _json("link", "show")]


def netns_names() -> list[str]:
    return [str(entry["name"]) for entry in _json("netns", "list")]


def routed_networks() -> list[IPv4Network]:
    """Every IPv4 network this machine routes or holds an address in (any table)."""
    networks = []
    for route in _json("-4", "route", "show", "table", "all"):
        destination = str(route.get("dst", ""))
        if destination in {"", "default"} or route.get("type") in {"broadcast", "local"}:
            continue
        try:
            networks.append(ip_network(destination, strict=False))
        except ValueError:
            continue
    for link in _json("-4", "addr", "show"):
        for info in link.get("addr_info", []):  # type: ignore[attr-defined]
            networks.append(ip_network(f"{info['local']}/{info['prefixlen']}", strict=False))
    return [network for network in networks if isinstance(network, IPv4Network)]


def create_bridge(name: str, address: IPv4Address, subnet: IPv4Network) -> None:
    ip("link", "add", name, "type", "bridge")
    ip("addr", "add", f"{address}/{subnet.prefixlen}", "dev", name)
    ip("link", "set", name, "up")


def create_host_network(
    netns: str, veth: str, bridge: str, address: IPv4Address, subnet: IPv4Network
) -> None:
    """A namespace whose `eth0` is wired to the bridge and holds the host's address."""
    ip("netns", "add", netns)
    ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    ip("link", "set", veth, "master", bridge, "up")
    ip("-n", netns, "addr", "add", f"{address}/{subnet.prefixlen}", "dev", "eth0")
    ip("-n", netns, "link", "set", "eth0", "up")
    ip("-n", netns, "link", "set", "lo", "up")


def delete_link(name: str) -> bool:
    """Delete a link if it exists; False when it was already gone (e.g. with its peer)."""
    done = subprocess.run(["ip", "link", "delete", name], capture_output=True, text=True)
    if done.returncode == 0:
        return True
    if name not in link_names():
        return False
    raise LabError(f"cannot delete link {name}: {done.stderr.strip()}")


def delete_netns(name: str) -> None:
    if name in netns_names():
        ip("netns", "delete", name)

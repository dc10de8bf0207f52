"""Filters of playbooks/kubernetes.yml: the agent's env file, as the role renders it, turned
into what a ConfigMap, a Secret and a Deployment need (kept in Python, tested in tests/unit)."""

from __future__ import annotations

import base64
import posixpath
from collections.abc import Mapping
from typing import Any

from mcp_mesh_sdk.envfile import parse_env_text

# The agent's variables naming directories it writes (an emptyDir each in the pod), and files
# whose directory it writes (the audit log).
WRITABLE_DIRECTORIES = ("MCP_MESH_STATE_DIR", "BASE_DIRECTORY")
WRITABLE_FILE_DIRECTORIES = ("MCP_MESH_AUDIT_LOG",)


def mesh_env_data(text: str) -> dict[str, str]:
    """The variables of an env file as mesh-service.env.j2 renders it, read the way the agent
    reads them (mcp_mesh_sdk.envfile: quotes and escapes undone), in file order."""
    return parse_env_text(text, source="mesh-service.env.j2")


def mesh_base64_values(values: Mapping[str, Any]) -> dict[str, str]:
    """Each value base64-encoded (UTF-8): a Secret's `data`."""
    return {
        name: base64.b64encode(str(value).encode("utf-8")).decode("ascii")
        for name, value in values.items()
    }


def mesh_writable_directories(env: Mapping[str, str]) -> list[str]:
    """The directories the agent writes, for this env: its state directory, BASE_DIRECTORY
    and the audit log's folder (an emptyDir each: the pod's root file system is read-only, and
    a volume's mount point is made for it, so a directory inside another one exists too).
    Sorted and normalised; absolute paths other than / only."""
    found = {posixpath.normpath(env[name]) for name in WRITABLE_DIRECTORIES if env.get(name)}
    found |= {
        posixpath.dirname(posixpath.normpath(env[name]))
        for name in WRITABLE_FILE_DIRECTORIES
        if env.get(name)
    }
    return sorted(path for path in found if path.startswith("/") and path != "/")


def mesh_volume_name(path: str) -> str:
    """A volume name (DNS label) for a directory: /var/lib/mcp-mesh -> var-lib-mcp-mesh."""
    label = "".join(char if char.isalnum() else "-" for char in path.lower()).strip("-")
    while "--" in label:
        label = label.replace("--", "-")
    return (label or "root")[:63].rstrip("-")


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "mesh_env_data": mesh_env_data,
            "mesh_base64_values": mesh_base64_values,
            "mesh_writable_directories": mesh_writable_directories,
            "mesh_volume_name": mesh_volume_name,
        }

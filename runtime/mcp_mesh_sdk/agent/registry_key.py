"""The agent's own registry key: `<state_dir>/registry-agent.key`, made once, kept for good.

The registry binds the agent's name to this key at the first registration that presents it
and refuses later changes of that entry without it (registry/store.py), so the shared registry
token alone cannot move another agent's entry. The key is made before it is ever sent, so a
lost answer cannot leave the registry holding a key the agent does not. It lives in the state
directory, so restarts, upgrades and a restored backup keep it; the file is the service
user's alone (0600) and its content is never logged.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path

from mcp_mesh_sdk.atomicfile import fsync_directory
from mcp_mesh_sdk.envreader import Secret

KEY_FILE = "registry-agent.key"
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32,256}$")  # the registry's KEY_PATTERN
_MAX_FILE = 1024


class RegistryKeyError(Exception):
    """The key file cannot be read or made; the message names the file, never its content."""


def key_path(state_dir: Path) -> Path:
    return Path(state_dir) / KEY_FILE


def load_or_create_key(state_dir: Path) -> Secret:
    """The agent's key, made (and stored 0600) the first time."""
    path = key_path(state_dir)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise RegistryKeyError(f"cannot read the agent key {path}: {exc.strerror or exc}") from exc
    try:
        _create(path)
    except FileExistsError:
        pass  # made meanwhile by another process: that one counts
    except OSError as exc:
        raise RegistryKeyError(f"cannot make the agent key {path}: {exc.strerror or exc}") from exc
    try:
        return _read(path)
    except OSError as exc:
        raise RegistryKeyError(f"cannot read the agent key {path}: {exc.strerror or exc}") from exc


def _read(path: Path) -> Secret:
    handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise RegistryKeyError(f"the agent key {path} is not a regular file")
        if info.st_mode & 0o077:  # e.g. restored with a looser mode: tighten, it is ours
            with contextlib.suppress(OSError):
                os.fchmod(handle, 0o600)
        data = os.read(handle, _MAX_FILE)
    finally:
        os.close(handle)
    key = data.decode("ascii", errors="replace").strip()
    if not _KEY_PATTERN.match(key):
        raise RegistryKeyError(
            f"the agent key {path} is not a key (32-256 letters, digits, '-' or '_'); the registry "
            "still holds this agent's old binding: restore the file, or have the operator run "
            "`mcp-mesh-sdk registry forget NAME` on the registry host and delete the file"
        )
    return Secret(key)


def _create(path: Path) -> None:
    """A new random key, written whole before it appears under `path` (never over a file)."""
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    handle = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
    )
    try:
        try:
            os.fchmod(handle, 0o600)  # whatever the umask
            os.write(handle, (secrets.token_urlsafe(32) + "\n").encode())
            os.fsync(handle)
        finally:
            os.close(handle)
        os.link(temporary, path)  # FileExistsError when there is one already
    finally:
        temporary.unlink(missing_ok=True)
    fsync_directory(path.parent)

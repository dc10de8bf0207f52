"""Replace a file so that readers and crashes see the old content or the new, never a mix.

Ownership follows the data, not whoever ran the command: a file rewritten by root (an ops
command) keeps the owner and mode it had, and a new file takes its directory's owner, so
the service that owns the state directory can still write it afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def fsync_directory(directory: Path) -> None:
    """Make a rename or creation inside `directory` durable."""
    handle = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def adopt_owner(handle: int, reference: Path) -> None:
    """Give the open file `reference`'s owner and group (root only; others cannot chown)."""
    if os.geteuid() != 0:
        return
    with contextlib.suppress(OSError):
        info = reference.stat()
        os.fchown(handle, info.st_uid, info.st_gid)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o640) -> None:
    """Temporary file beside `path`, fsync, rename over `path`, fsync of the directory.

    An existing file keeps its mode and owner; a new one gets `mode` and the directory's owner.
    """
    try:
        current = path.stat()
    except FileNotFoundError:
        current = None
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            if current is None:
                os.fchmod(file.fileno(), mode)
                adopt_owner(file.fileno(), path.parent)
            else:
                os.fchmod(file.fileno(), current.st_mode & 0o7777)
                if os.geteuid() == 0:
                    os.fchown(file.fileno(), current.st_uid, current.st_gid)
            os.fsync(file.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def atomic_write_text(path: Path, text: str, mode: int = 0o640) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_write_json(path: Path, value: Any, mode: int = 0o640) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n", mode)


def open_lock_file(path: Path) -> int:
    """Open (creating if needed) a lock file the directory's owner can open too."""
    handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)
    if os.fstat(handle).st_uid != path.parent.stat().st_uid:
        adopt_owner(handle, path.parent)
    return handle

"""The four file operations the agent offers, confined by a PathGuard.

Plain blocking functions with JSON-able results, no MCP in sight: the MCP layer runs them in
worker threads and turns `Refusal` / `OperationFailed` into tool errors. Writes are atomic
(temporary file, fsync, rename), so a reader never sees half a file.
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.agent.paths import OperationFailed, PathGuard, Refusal

TOOL_NAMES = ("read_file", "write_file", "list_directory", "file_info")
MAX_LISTED_ENTRIES = 1000
_TEMP_PREFIX = ".mcp-mesh-"
_OPEN_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


class FileTools:
    def __init__(self, guard: PathGuard | None) -> None:
        self.guard = guard

    def _guard(self) -> PathGuard:
        if self.guard is None:
            raise Refusal("file operations are disabled: BASE_DIRECTORY is not set")
        return self.guard

    def read_file(self, path: str) -> str:
        guard = self._guard()
        real = guard.resolve(path)
        guard.check_extension(path, real)
        fd = _open(real, os.O_RDONLY, path)
        try:
            guard.verify_open_file(fd, path)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OperationFailed(f"{path!r} is not a regular file")
            guard.check_size(path, info.st_size)
            with os.fdopen(fd, "rb", closefd=False) as stream:
                data = stream.read(guard.max_file_size + 1)
        finally:
            os.close(fd)
        guard.check_size(path, len(data))  # grew since fstat
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise OperationFailed(f"{path!r} is not UTF-8 text") from exc

    def write_file(self, path: str, content: str) -> dict[str, Any]:
        guard = self._guard()
        real = guard.resolve(path)
        guard.check_extension(path, real)
        data = content.encode("utf-8")
        guard.check_size(path, len(data))
        if real == guard.real_base or real.is_dir():
            raise OperationFailed(f"{path!r} is a directory")
        mode = stat.S_IMODE(real.stat().st_mode) if real.exists() else None
        try:
            real.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:
            raise OperationFailed(f"a parent of {path!r} is not a directory") from exc
        except OSError as exc:
            raise OperationFailed(f"cannot create the folder for {path!r}: {exc.strerror}") from exc
        parent = guard.resolve(str(real.parent))  # the folders just made stay inside too
        temp = parent / f"{_TEMP_PREFIX}{uuid.uuid4().hex}.tmp"
        fd = _open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, path, mode=0o644)
        try:
            guard.verify_open_file(fd, path)
            if mode is not None:  # a replaced file keeps its permissions
                os.fchmod(fd, mode)
            with os.fdopen(fd, "wb", closefd=False) as stream:
                stream.write(data)
                stream.flush()
                os.fsync(fd)
            os.close(fd)
            fd = -1
            temp.replace(parent / real.name)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        return {"path": guard.display(real), "bytes_written": len(data), "created": mode is None}

    def list_directory(self, path: str = ".") -> dict[str, Any]:
        guard = self._guard()
        real = guard.resolve(path)
        entries: list[dict[str, Any]] = []
        truncated = False
        try:
            with os.scandir(real) as listing:
                for entry in sorted(listing, key=lambda item: item.name):
                    if entry.name.startswith(_TEMP_PREFIX):
                        continue
                    if len(entries) >= MAX_LISTED_ENTRIES:
                        truncated = True
                        break
                    entries.append(_describe_entry(entry))
        except FileNotFoundError as exc:
            raise OperationFailed(f"{path!r} does not exist") from exc
        except NotADirectoryError as exc:
            raise OperationFailed(f"{path!r} is not a directory") from exc
        except PermissionError as exc:
            raise OperationFailed(f"{path!r} cannot be read: permission denied") from exc
        return {"path": guard.display(real), "entries": entries, "truncated": truncated}

    def file_info(self, path: str) -> dict[str, Any]:
        guard = self._guard()
        real = guard.resolve(path)
        try:
            info = real.stat()
        except FileNotFoundError as exc:
            raise OperationFailed(f"{path!r} does not exist") from exc
        except PermissionError as exc:
            raise OperationFailed(f"{path!r} cannot be read: permission denied") from exc
        name = real.name.lower()
        return {
            "path": guard.display(real),
            "name": real.name,
            "type": _kind(info.st_mode),
            "size": info.st_size,
            "modified": datetime.fromtimestamp(info.st_mtime, UTC).isoformat(),
            "permissions": oct(stat.S_IMODE(info.st_mode)),
            "extension": "".join(real.suffixes).lower(),
            "allowed": any(name.endswith(ext) for ext in guard.allowed_extensions),
        }


def _open(real: Path, flags: int, shown: str, mode: int = 0o644) -> int:
    try:
        return os.open(real, flags | _OPEN_FLAGS, mode)
    except FileNotFoundError as exc:
        raise OperationFailed(f"{shown!r} does not exist") from exc
    except IsADirectoryError as exc:
        raise OperationFailed(f"{shown!r} is a directory") from exc
    except PermissionError as exc:
        raise OperationFailed(f"{shown!r}: permission denied") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink appeared after the path was checked
            from mcp_mesh_sdk.agent.security import SecurityEventType

            raise Refusal(
                f"refused: {shown!r} is a symlink", SecurityEventType.PATH_TRAVERSAL_ATTEMPT
            ) from exc
        raise OperationFailed(f"{shown!r}: {exc.strerror}") from exc


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _describe_entry(entry: os.DirEntry[str]) -> dict[str, Any]:
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return {"name": entry.name, "type": "other", "size": None}
    kind = _kind(info.st_mode)
    return {"name": entry.name, "type": kind, "size": info.st_size if kind == "file" else None}

"""The four file operations the agent offers, confined by a PathGuard.

Plain blocking functions with JSON-able results, no MCP in sight: the MCP layer runs them in
worker threads and turns `Refusal` / `OperationFailed` into tool errors. Writes are atomic
(temporary file, fsync, rename), so a reader never sees half a file.

Every failure says whose fault it is (see `paths.Outcome`): a refusal, a missing file, a path
through a file, a directory where a file is wanted, a file that is not UTF-8 are client
errors (`Refusal`, `ClientError`); any other OS error (EIO, ENOSPC, EACCES/EPERM on the
agent's own base directory, EFBIG...) is a server error (`ServerError`): the call was valid
and the agent could not do it.
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.agent.paths import AGENT_OWN_PREFIX, ClientError, PathGuard, Refusal, ServerError
from mcp_mesh_sdk.agent.security import SecurityEventType

TOOL_NAMES = ("read_file", "write_file", "list_directory", "file_info")
MAX_LISTED_ENTRIES = 1000
_TEMP_PREFIX = AGENT_OWN_PREFIX
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
                raise ClientError(f"{path!r} is not a regular file", "not_a_file")
            guard.check_size(path, info.st_size)
            try:
                with os.fdopen(fd, "rb", closefd=False) as stream:
                    data = stream.read(guard.max_file_size + 1)
            except OSError as exc:
                raise os_failure(exc, path) from exc
        finally:
            os.close(fd)
        guard.check_size(path, len(data))  # grew since fstat
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ClientError(f"{path!r} is not UTF-8 text", "not_text") from exc

    def write_file(self, path: str, content: str) -> dict[str, Any]:
        guard = self._guard()
        real = guard.resolve(path)
        guard.check_extension(path, real)
        data = content.encode("utf-8")
        guard.check_size(path, len(data))
        if real == guard.real_base or real.is_dir():
            raise ClientError(f"{path!r} is a directory", "is_a_directory")
        try:
            mode = stat.S_IMODE(real.stat().st_mode) if real.exists() else None
        except OSError as exc:
            raise os_failure(exc, path) from exc
        try:
            real.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise ClientError(
                f"a parent of {path!r} is not a directory", "not_a_directory"
            ) from exc
        except OSError as exc:
            raise os_failure(exc, path, f"cannot create the folder for {path!r}") from exc
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
        except BaseException as exc:
            if fd >= 0:
                os.close(fd)
            temp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise os_failure(exc, path) from exc
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
        except NotADirectoryError as exc:
            raise ClientError(f"{path!r} is not a directory", "not_a_directory") from exc
        except OSError as exc:
            raise os_failure(exc, path) from exc
        return {"path": guard.display(real), "entries": entries, "truncated": truncated}

    def file_info(self, path: str) -> dict[str, Any]:
        guard = self._guard()
        real = guard.resolve(path)
        try:
            info = real.stat()
        except OSError as exc:
            raise os_failure(exc, path) from exc
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
    except OSError as exc:
        raise os_failure(exc, shown) from exc


# errno -> (detail, what the caller is told): the caller's mistake, not the agent's.
_CLIENT_ERRNOS = {
    errno.ENOENT: ("not_found", "does not exist"),
    errno.ENOTDIR: ("not_a_directory", "is not a directory (or a part of it is a file)"),
    errno.EISDIR: ("is_a_directory", "is a directory"),
    errno.ENAMETOOLONG: ("bad_path", "has a name that is too long"),
    errno.ENXIO: ("not_a_file", "is not a regular file"),  # a socket or a device node
    errno.ENODEV: ("not_a_file", "is not a regular file"),
}
# errno -> detail for the agent's own failures; every errno not named is an `io_error`.
_SERVER_DETAILS = {
    errno.EACCES: "permission_denied",
    errno.EPERM: "permission_denied",
    errno.EROFS: "permission_denied",
    errno.ENOSPC: "no_space",
    errno.EDQUOT: "no_space",
    errno.EFBIG: "no_space",
}


def os_failure(
    exc: OSError, shown: str, context: str | None = None
) -> Refusal | ClientError | ServerError:
    """What an OSError met on `shown` means for the caller: a refusal (a symlink appeared
    after the check: ELOOP from O_NOFOLLOW), a client error (ENOENT, ENOTDIR, EISDIR,
    ENAMETOOLONG, ENXIO) or a server error (anything else: the base directory is the agent's own,
    so EACCES, EIO, ENOSPC there are the agent's failures)."""
    if exc.errno == errno.ELOOP:
        return Refusal(f"refused: {shown!r} is a symlink", SecurityEventType.PATH_TRAVERSAL_ATTEMPT)
    client = _CLIENT_ERRNOS.get(exc.errno or 0)
    if client is not None:
        detail, text = client
        return ClientError(f"{shown!r} {text}", detail)
    why = exc.strerror or type(exc).__name__
    if exc.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied"
    return ServerError(
        f"{context or repr(shown)}: {why}", _SERVER_DETAILS.get(exc.errno or 0, "io_error")
    )


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

"""The four file operations the agent offers, confined by a PathGuard.

Plain blocking functions with JSON-able results, no MCP in sight: the MCP layer runs them in
worker threads (a read of a small file on its event loop, see INLINE_READ_BYTES) and turns
`Refusal` / `OperationFailed` into tool errors. Each acts through the
descriptor of the folder `PathGuard.locate` walked to, never through a path the kernel would
resolve again. Writes are atomic (temporary file, fsync, rename, fsync of the folder), so a
reader never sees half a file.

Every failure says whose fault it is (see `paths.Outcome`): a refusal, a missing file, a path
through a file, a directory where a file is wanted, a file that is not UTF-8 are client
errors (`Refusal`, `ClientError`); any other OS error (EIO, ENOSPC, EACCES/EPERM on the
agent's own base directory, EFBIG...) is a server error (`ServerError`): the call was valid
and the agent could not do it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from mcp_mesh_sdk.agent.paths import (
    AGENT_OWN_PREFIX,
    ClientError,
    Location,
    PathGuard,
    Refusal,
    ServerError,
)
from mcp_mesh_sdk.agent.security import SecurityEventType
from mcp_mesh_sdk.agent.temporaries import temporary_name

TOOL_NAMES = ("read_file", "write_file", "list_directory", "file_info")
# A file this small is read on the event loop (its walk, open and fstat too: what /health and
# /ready do there already); a larger one in a worker thread, as the other tools run.
INLINE_READ_BYTES = 64 * 1024
MAX_LISTED_ENTRIES = 1000
_TEMP_PREFIX = AGENT_OWN_PREFIX
_OPEN_FLAGS = os.O_NONBLOCK  # a FIFO opens without waiting (and is refused as not a file)


class FileTools:
    def __init__(self, guard: PathGuard | None) -> None:
        self.guard = guard

    def _guard(self) -> PathGuard:
        if self.guard is None:
            raise Refusal("file operations are disabled: BASE_DIRECTORY is not set")
        return self.guard

    def read_file(self, path: str) -> str:
        text = self.read_small_file(path, None)
        assert text is not None
        return text

    def read_small_file(self, path: str, limit: int | None) -> str | None:
        """`read_file`, or None (nothing read, nothing refused) when the file holds more than
        `limit` bytes: the agent reads small files on its event loop (`INLINE_READ_BYTES`)
        and hands larger ones to a worker thread."""
        guard = self._guard()
        with _located(guard, path, check_extension=True) as where:
            fd = _opened(where, os.O_RDONLY | _OPEN_FLAGS, path)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ClientError(f"{path!r} is not a regular file", "not_a_file")
            guard.check_size(path, info.st_size)
            if limit is not None and info.st_size > limit:
                return None
            try:
                data = _read_up_to(fd, guard.max_file_size + 1, info.st_size)
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
        data = content.encode("utf-8")
        with _located(guard, path, check_extension=True, write_size=len(data),
                      make_folders=True) as where:  # fmt: skip
            try:
                mode = _replaced_mode(where, path)
                _replace(where, data, mode)
            except OSError as exc:
                raise os_failure(exc, path) from exc
            return {"path": where.display, "bytes_written": len(data), "created": mode is None}

    def list_directory(self, path: str = ".") -> dict[str, Any]:
        guard = self._guard()
        with _located(guard, path) as where:
            fd = _opened(where, os.O_RDONLY | os.O_DIRECTORY, path)
            shown = where.display
        entries: list[dict[str, Any]] = []
        truncated = False
        try:
            with os.scandir(fd) as listing:
                for entry in sorted(listing, key=lambda item: item.name):
                    if entry.name.startswith(_TEMP_PREFIX):
                        continue
                    if len(entries) >= MAX_LISTED_ENTRIES:
                        truncated = True
                        break
                    entries.append(_describe_entry(entry))
        except OSError as exc:
            raise os_failure(exc, path) from exc
        finally:
            os.close(fd)
        return {"path": shown, "entries": entries, "truncated": truncated}

    def file_info(self, path: str) -> dict[str, Any]:
        guard = self._guard()
        with _located(guard, path) as where:
            try:
                info = where.stat()
            except OSError as exc:
                raise os_failure(exc, path) from exc
            shown = where.display
            name = where.parts[-1] if where.parts else guard.real_base.name
        return {
            "path": shown,
            "name": name,
            "type": _kind(info.st_mode),
            "size": info.st_size,
            "modified": datetime.fromtimestamp(info.st_mtime, UTC).isoformat(),
            "permissions": oct(stat.S_IMODE(info.st_mode)),
            "extension": "".join(PurePosixPath(name).suffixes).lower(),
            "allowed": any(name.lower().endswith(ext) for ext in guard.allowed_extensions),
        }


def _read_up_to(fd: int, limit: int, expected: int) -> bytes:
    """Up to `limit` bytes from `fd` until its end (`expected`: the size fstat gave, so a
    file read whole takes one read and one more to see its end)."""
    chunks = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(remaining, max(expected + 1, 64 * 1024)))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _located(
    guard: PathGuard,
    path: str,
    *,
    check_extension: bool = False,
    write_size: int | None = None,
    make_folders: bool = False,
) -> Location:
    """`guard.locate`, with an OSError on the way told as the caller's or the agent's fault."""
    try:
        return guard.locate(
            path, check_extension=check_extension, write_size=write_size,
            make_folders=make_folders,
        )  # fmt: skip
    except NotADirectoryError as exc:
        if make_folders:
            raise ClientError(
                f"a parent of {path!r} is not a directory", "not_a_directory"
            ) from exc
        raise os_failure(exc, path) from exc
    except OSError as exc:
        context = f"cannot create the folder for {path!r}" if make_folders else None
        raise os_failure(exc, path, context) from exc


def _opened(where: Location, flags: int, shown: str) -> int:
    try:
        return where.open(flags)
    except OSError as exc:
        raise os_failure(exc, shown) from exc


def _replaced_mode(where: Location, path: str) -> int | None:
    """The permissions of the file a write replaces (kept), or None for a new file."""
    try:
        info = where.stat()
    except FileNotFoundError:
        return None
    if where.name == "." or stat.S_ISDIR(info.st_mode):
        raise ClientError(f"{path!r} is a directory", "is_a_directory")
    return stat.S_IMODE(info.st_mode)


def _replace(where: Location, data: bytes, mode: int | None) -> None:
    """Temporary file in the target's folder, fsync, rename over the target, fsync of the
    folder: all through the folder's descriptor, none of it through a symlink."""
    temporary = temporary_name()
    folder = where.folder
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644, dir_fd=folder)  # fmt: skip
    try:
        if mode is not None:  # a replaced file keeps its permissions
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=False) as stream:
            stream.write(data)
            stream.flush()
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.rename(temporary, where.name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=folder)
        raise
    os.fsync(folder)


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

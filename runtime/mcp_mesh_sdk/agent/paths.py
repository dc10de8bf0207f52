"""Confinement rules for the file tools: BASE_DIRECTORY, ALLOWED_EXTENSIONS, MAX_FILE_SIZE.

A path is refused when it holds `..`, is absolute and outside the base directory, or leads
(through symlinks) outside it. It is walked from an open descriptor of the base directory one
name at a time with O_NOFOLLOW (`dir_fd=`), and each symlink met is read and judged before it
is followed, so a folder swapped for a symlink while a tool runs cannot lead a read, write,
listing, stat or mkdir outside: the tools then act through the last folder's descriptor.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import ClassVar

from mcp_mesh_sdk.agent.security import SecurityEventType

SUSPICIOUS_NAME_PARTS = (".env", "password", "secret", "key")
# Names the agent itself makes in BASE_DIRECTORY (temporary writes, probes, smoke tests): hidden
# from list_directory and left out of backups.
AGENT_OWN_PREFIX = ".mcp-mesh-"


class Outcome(enum.StrEnum):
    """Whose fault a tool call's end was: the `outcome` label of `operations_total`.

    `client_error`: the call was wrong or not allowed (refused by policy, not found, bad
    arguments, too large, wrong type or extension, not a directory, not UTF-8). The agent did
    its job; a surge of these is a security signal, never a performance alert or an incident.
    `server_error`: the agent could not do a valid call (unexpected exception, an I/O error
    such as EIO, ENOSPC or EACCES on its own base directory, a timeout). These count in the
    error rate that alerts, incidents and /health/detailed look at.
    """

    OK = "ok"
    CLIENT_ERROR = "client_error"
    SERVER_ERROR = "server_error"


class ToolCallError(Exception):
    """A tool call that did not succeed; `outcome` says whose fault, `detail` the finer kind
    (the `error_type` label of `operation_errors_total`)."""

    outcome: ClassVar[Outcome] = Outcome.SERVER_ERROR
    default_detail: ClassVar[str] = "internal"

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or self.default_detail


class Refusal(ToolCallError):
    """A tool call refused on purpose (a client error); `event` is the security event it
    counts as (if any)."""

    outcome = Outcome.CLIENT_ERROR
    default_detail = "refused"

    def __init__(self, message: str, event: SecurityEventType | None = None) -> None:
        super().__init__(message)
        self.event = event


class OperationFailed(ToolCallError):
    """A tool call that could not be done. Raise `ClientError` or `ServerError`, which say
    whose fault it was; a bare OperationFailed counts as a server error."""


class ClientError(OperationFailed):
    """The caller asked for something that cannot be (missing file, not a directory, not
    UTF-8 text...): `detail` is e.g. not_found, not_a_directory, is_a_directory, not_a_file,
    not_text, bad_path, bad_arguments."""

    outcome = Outcome.CLIENT_ERROR
    default_detail = "bad_request"


class ServerError(OperationFailed):
    """The agent failed a valid call: `detail` is io_error, permission_denied, no_space,
    timeout or internal."""

    outcome = Outcome.SERVER_ERROR
    default_detail = "internal"


# Each folder of a path is opened from the one before it (`dir_fd=`) without following a
# symlink: a link met on the way is read and judged, never handed to the kernel to follow.
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_SYMLINKS = 40  # links followed (or folders made) for one path: the kernel's own limit


class PathGuard:
    """Where the file tools may act, and how a path is found there without leaving it."""

    def __init__(
        self, base_directory: Path, allowed_extensions: Iterable[str], max_file_size: int
    ) -> None:
        self.base_directory = base_directory
        self.allowed_extensions = tuple(sorted(allowed_extensions))
        self.max_file_size = max_file_size
        self._configured_base = PurePosixPath(os.path.normpath(base_directory))

    @property
    def real_base(self) -> Path:
        return Path(os.path.realpath(self.base_directory))

    def locate(
        self,
        path: str,
        *,
        check_extension: bool = False,
        write_size: int | None = None,
        make_folders: bool = False,
    ) -> Location:
        """The open folder inside the base directory that holds `path`'s last name.

        Refused, in this order: `..`, an absolute path outside the base, a name without an
        allowed extension (`check_extension`), more than MAX_FILE_SIZE bytes (`write_size`),
        a symlink on the way that leads outside. Missing folders are made with `make_folders`,
        else the walk fails with FileNotFoundError; other OSErrors are the caller's to judge.
        """
        parts = self._requested_parts(path)
        if check_extension:
            self.check_extension(path, _last_name(parts, self))
        if write_size is not None:
            self.check_size(path, write_size)
        location = Location(self, path, check_extension, make_folders)
        location.walk(parts)  # checks the extension again after each link followed
        return location

    def _requested_parts(self, path: str) -> list[str]:
        if not path or "\x00" in path:
            raise Refusal(
                "refused: empty path or a NUL byte in the path",
                SecurityEventType.PATH_TRAVERSAL_ATTEMPT,
            )
        if "/" not in path and path not in (".", ".."):
            return [path]  # one plain name: what PurePosixPath would make of it, at once
        requested = PurePosixPath(path)
        if ".." in requested.parts:
            raise Refusal(
                f"refused: {path!r} contains '..' (path traversal)",
                SecurityEventType.PATH_TRAVERSAL_ATTEMPT,
            )
        if not requested.is_absolute():
            return [part for part in requested.parts if part != "."]
        normal = PurePosixPath(os.path.normpath(requested))
        for base in (self._configured_base, PurePosixPath(self.real_base)):
            if normal.is_relative_to(base):
                return list(normal.relative_to(base).parts)
        raise Refusal(
            f"refused: {path!r} is outside the base directory",
            SecurityEventType.PATH_TRAVERSAL_ATTEMPT,
        )

    def link_destination(self, folder: Sequence[str], target: str, shown: str) -> list[str]:
        """The parts, from the base, of where a link in `folder` pointing at `target` leads;
        a Refusal if that is outside the base directory."""
        real_base = self.real_base
        leads_to = PurePosixPath(os.path.normpath(PurePosixPath(real_base, *folder, target)))
        for base in (PurePosixPath(real_base), self._configured_base):
            if leads_to.is_relative_to(base):
                return list(leads_to.relative_to(base).parts)
        raise Refusal(
            f"refused: {shown!r} leads outside the base directory (symlink)",
            SecurityEventType.PATH_TRAVERSAL_ATTEMPT,
        )

    def open_base(self) -> int:
        return os.open(self.base_directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def check_extension(self, path: str, name: str) -> None:
        name = name.lower()
        if not any(name.endswith(extension) for extension in self.allowed_extensions):
            allowed = ", ".join(self.allowed_extensions)
            raise Refusal(
                f"refused: {path!r} does not have an allowed extension ({allowed})",
                SecurityEventType.INVALID_FILE_TYPE,
            )

    def check_size(self, path: str, size: int) -> None:
        if size > self.max_file_size:
            raise Refusal(
                f"refused: {path!r} is {size} bytes, over the {self.max_file_size} byte limit",
                SecurityEventType.LARGE_FILE_ATTEMPT,
            )


class Location:
    """A name inside the base directory and the open folder that holds it.

    `folder` was reached from the base directory one name at a time with O_NOFOLLOW, so a
    folder swapped for a symlink afterwards cannot move it: act on `name` only through it
    (`dir_fd=folder`). `parts` is the path from the base (empty for the base itself). Close it
    (or use it in a `with`).
    """

    def __init__(
        self, guard: PathGuard, shown: str, check_extension: bool, make_folders: bool
    ) -> None:
        self.guard = guard
        self.shown = shown  # the path as the caller wrote it, for messages
        self.check_extension = check_extension
        self.make_folders = make_folders
        self.folder = -1
        self.parts: tuple[str, ...] = ()
        self.hops = 0

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else "."

    @property
    def display(self) -> str:
        """How the location is shown to the caller: relative to the base directory."""
        return "/".join(self.parts) or "."

    def walk(self, parts: Sequence[str]) -> None:
        """Open the folders of `parts` from the base directory, following links that stay
        inside (each one re-walked from the base)."""
        if self.check_extension:  # before any folder is made
            self.guard.check_extension(self.shown, _last_name(parts, self.guard))
        self.close()
        folder = self.guard.open_base()
        walked: list[str] = []
        pending = list(parts)
        try:
            while len(pending) > 1:
                name = pending[0]
                try:
                    child = os.open(name, _FOLDER_FLAGS, dir_fd=folder)
                except FileNotFoundError:
                    if not self.make_folders:
                        raise
                    self._count_hop()
                    with contextlib.suppress(FileExistsError):  # made meanwhile: open it
                        os.mkdir(name, dir_fd=folder)
                    continue
                except NotADirectoryError as exc:  # a file, or a symlink (O_NOFOLLOW)
                    target = _link_target(folder, name)
                    if target is None:
                        raise exc from None
                    self._count_hop()
                    leads_to = self.guard.link_destination(walked, target, self.shown)
                    pending = leads_to + pending[1:]
                    os.close(folder)
                    folder = -1
                    folder = self.guard.open_base()
                    walked = []
                    continue
                os.close(folder)
                folder = child
                walked.append(pending.pop(0))
        except BaseException:
            if folder >= 0:
                os.close(folder)
            raise
        self.folder = folder
        self.parts = (*walked, *pending)

    def follow(self, failure: OSError) -> None:
        """`name` is a symlink: move to where it leads (a Refusal if outside); re-raise
        `failure` if it is no symlink after all."""
        target = _link_target(self.folder, self.name)
        if target is None:
            raise failure
        self._count_hop()
        self.walk(self.guard.link_destination(self.parts[:-1], target, self.shown))

    def open(self, flags: int, mode: int = 0o644) -> int:
        """Open `name` (O_NOFOLLOW added), following only links that stay inside."""
        while True:
            try:
                return os.open(self.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                               dir_fd=self.folder)  # fmt: skip
            except OSError as exc:  # a link gives ELOOP, or ENOTDIR with O_DIRECTORY
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                self.follow(exc)

    def stat(self) -> os.stat_result:
        """`name`'s status, following only links that stay inside."""
        while True:
            info = os.stat(self.name, dir_fd=self.folder, follow_symlinks=False)
            if not stat.S_ISLNK(info.st_mode):
                return info
            self.follow(OSError(errno.ELOOP, os.strerror(errno.ELOOP)))

    def _count_hop(self) -> None:
        self.hops += 1
        if self.hops > MAX_SYMLINKS:
            raise Refusal(
                f"refused: {self.shown!r} goes through too many symlinks",
                SecurityEventType.PATH_TRAVERSAL_ATTEMPT,
            )

    def close(self) -> None:
        if self.folder >= 0:
            os.close(self.folder)
            self.folder = -1

    def __enter__(self) -> Location:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _link_target(folder: int, name: str) -> str | None:
    """What the symlink `name` points at; None if it is no symlink (any more)."""
    try:
        return os.readlink(name, dir_fd=folder)
    except OSError:
        return None


def _last_name(parts: Sequence[str], guard: PathGuard) -> str:
    return parts[-1] if parts else guard.real_base.name


def is_suspicious(path: str) -> bool:
    """Names the spec watches for (.env, password, secret, key): logged, not refused."""
    lowered = path.lower()
    if not any(part in lowered for part in SUSPICIOUS_NAME_PARTS):
        return False  # the usual case, without parsing the path
    name = PurePosixPath(path).name.lower()
    return any(part in name for part in SUSPICIOUS_NAME_PARTS)

"""Confinement rules for the file tools: BASE_DIRECTORY, ALLOWED_EXTENSIONS, MAX_FILE_SIZE.

A path is refused when it holds `..`, is absolute and outside the base directory, or resolves
(through symlinks) outside it. Opened files are checked once more through `/proc/self/fd`, so
a symlink swapped in between the check and the open cannot lead out either.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable
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


class PathGuard:
    def __init__(
        self, base_directory: Path, allowed_extensions: Iterable[str], max_file_size: int
    ) -> None:
        self.base_directory = base_directory
        self.allowed_extensions = tuple(sorted(allowed_extensions))
        self.max_file_size = max_file_size

    @property
    def real_base(self) -> Path:
        return Path(os.path.realpath(self.base_directory))

    def resolve(self, path: str) -> Path:
        """The real path `path` names inside the base directory, or a Refusal."""
        if not path or "\x00" in path:
            raise Refusal(
                "refused: empty path or a NUL byte in the path",
                SecurityEventType.PATH_TRAVERSAL_ATTEMPT,
            )
        requested = PurePosixPath(path)
        if ".." in requested.parts:
            raise Refusal(
                f"refused: {path!r} contains '..' (path traversal)",
                SecurityEventType.PATH_TRAVERSAL_ATTEMPT,
            )
        base = self.real_base
        if requested.is_absolute():
            normal = Path(os.path.normpath(requested))
            inside = normal.is_relative_to(self.base_directory) or normal.is_relative_to(base)
            if not inside:
                raise Refusal(
                    f"refused: {path!r} is outside the base directory",
                    SecurityEventType.PATH_TRAVERSAL_ATTEMPT,
                )
            candidate = normal
        else:
            candidate = base / requested
        real = Path(os.path.realpath(candidate))
        if not real.is_relative_to(base):
            raise Refusal(
                f"refused: {path!r} leads outside the base directory (symlink)",
                SecurityEventType.PATH_TRAVERSAL_ATTEMPT,
            )
        return real

    def display(self, real: Path) -> str:
        """How a resolved path is shown to the caller: relative to the base directory."""
        relative = real.relative_to(self.real_base)
        return str(relative) if str(relative) != "." else "."

    def check_extension(self, path: str, real: Path) -> None:
        name = real.name.lower()
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

    def verify_open_file(self, fd: int, path: str) -> None:
        """Refuse if an opened descriptor's real location is outside the base directory."""
        try:
            opened = Path(f"/proc/self/fd/{fd}").readlink()
        except OSError:  # no /proc: the pre-open check stands alone
            return
        if not opened.is_relative_to(self.real_base):
            raise Refusal(
                f"refused: {path!r} leads outside the base directory (symlink)",
                SecurityEventType.PATH_TRAVERSAL_ATTEMPT,
            )


def is_suspicious(path: str) -> bool:
    """Names the spec watches for (.env, password, secret, key): logged, not refused."""
    name = PurePosixPath(path).name.lower()
    return any(part in name for part in SUSPICIOUS_NAME_PARTS)

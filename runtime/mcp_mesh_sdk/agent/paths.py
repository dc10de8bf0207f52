"""Confinement rules for the file tools: BASE_DIRECTORY, ALLOWED_EXTENSIONS, MAX_FILE_SIZE.

A path is refused when it holds `..`, is absolute and outside the base directory, or resolves
(through symlinks) outside it. Opened files are checked once more through `/proc/self/fd`, so
a symlink swapped in between the check and the open cannot lead out either.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from mcp_mesh_sdk.agent.security import SecurityEventType

SUSPICIOUS_NAME_PARTS = (".env", "password", "secret", "key")


class Refusal(Exception):
    """A tool call refused on purpose; `event` is the security event it counts as (if any)."""

    def __init__(self, message: str, event: SecurityEventType | None = None) -> None:
        super().__init__(message)
        self.event = event


class OperationFailed(Exception):
    """A tool call that could not be done (missing file, not text...): the caller's problem."""


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

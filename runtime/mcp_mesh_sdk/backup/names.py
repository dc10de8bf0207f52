"""How backup archives are named, and the time a name carries: all the agent's /metrics needs
to find the newest backup, without the archive code (age, gzip, manifests) in its memory."""

from __future__ import annotations

import re

ARCHIVE_PREFIX = "mcp-mesh-"
ARCHIVE_SUFFIX = ".tar.gz.age"
LEGACY_SUFFIX = ".tar.gz"  # unencrypted, written before backups were encrypted
SUFFIXES = (ARCHIVE_SUFFIX, LEGACY_SUFFIX)

_NAME_TIME = re.compile(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)\.(\d{3})Z\.tar\.gz(\.age)?$")


def time_from_name(name: str) -> str | None:
    """The creation time a backup's name carries (for archives whose manifest is unreadable)."""
    match = _NAME_TIME.search(name)
    if match is None:
        return None
    y, mo, d, h, mi, s, ms, _ = match.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}.{ms}Z"

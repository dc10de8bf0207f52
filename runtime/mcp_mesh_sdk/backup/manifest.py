"""The manifest: what a backup holds and the sha256 of every member, first in the archive."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mcp_mesh_sdk.errors import OpsError

MANIFEST_NAME = "MANIFEST.json"
FORMAT = 1
ROOTS = ("config", "env", "state", "data")
FILE, DIRECTORY, SYMLINK = "file", "dir", "symlink"


@dataclass(frozen=True)
class Entry:
    path: str  # inside the archive: "<root>" or "<root>/<relative path>"
    type: str
    mode: int
    uid: int
    gid: int
    owner: str
    group: str
    mtime: float
    size: int = 0
    sha256: str | None = None  # files only
    target: str | None = None  # symlinks only

    @property
    def root(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def relative(self) -> str:
        """The path below its root ('' for the root itself)."""
        return self.path.partition("/")[2]


@dataclass
class Manifest:
    created_at: str
    host: str
    agent_version: str
    schema_version: int
    roots: dict[str, str]  # root -> the absolute path it was taken from
    entries: list[Entry] = field(default_factory=list)
    format: int = FORMAT
    warnings: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        """JSON with one member per line (C encoder: fast for 100 000 members)."""
        head = {
            "format": self.format,
            "created_at": self.created_at,
            "host": self.host,
            "agent_version": self.agent_version,
            "schema_version": self.schema_version,
            "roots": self.roots,
            "warnings": self.warnings,
        }
        members = ",\n".join(
            json.dumps({k: v for k, v in vars(entry).items() if v is not None}, sort_keys=True)
            for entry in self.entries
        )
        text = json.dumps(head, sort_keys=True)[:-1] + ',\n"members": [\n' + members + "\n]}\n"
        return text.encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            document = json.loads(data)
            entries = [Entry(**member) for member in document["members"]]
            manifest = cls(
                created_at=str(document["created_at"]),
                host=str(document["host"]),
                agent_version=str(document["agent_version"]),
                schema_version=int(document["schema_version"]),
                roots=dict(document["roots"]),
                entries=entries,
                format=int(document["format"]),
                warnings=list(document.get("warnings", [])),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise OpsError(f"the manifest is damaged: {exc}") from exc
        if manifest.format > FORMAT:
            raise OpsError(
                f"backup format {manifest.format} is newer than this runtime reads ({FORMAT})"
            )
        return manifest

    def summary(self) -> dict[str, Any]:
        return {
            "created_at": self.created_at,
            "host": self.host,
            "agent_version": self.agent_version,
            "schema_version": self.schema_version,
            "members": len(self.entries),
            "bytes": sum(entry.size for entry in self.entries),
        }

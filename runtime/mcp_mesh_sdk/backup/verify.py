"""`backup verify`: re-hash every member against the manifest, in one streaming pass."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.backup.manifest import FILE, SYMLINK, Entry, Manifest
from mcp_mesh_sdk.backup.reader import DAMAGE, READ_SIZE, ArchiveReader, CorruptArchive
from mcp_mesh_sdk.backup.sidecar import read_sidecar_raw, write_sidecar
from mcp_mesh_sdk.errors import OpsError

TAR_TYPES = {FILE: "isfile", "dir": "isdir", SYMLINK: "issym"}


@dataclass
class VerifyReport:
    archive: Path
    manifest: Manifest | None = None
    sha256: str | None = None
    size: int | None = None
    checked: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    corrupt: str | None = None
    archive_changed: str | None = None  # its bytes differ from what `create` wrote

    @property
    def ok(self) -> bool:
        problems = self.changed or self.missing or self.extra
        return not (problems or self.corrupt or self.archive_changed)

    def problems(self) -> list[str]:
        found = [f"changed: {p}" for p in self.changed]
        found += [f"missing: {p}" for p in self.missing]
        found += [f"extra: {p}" for p in self.extra]
        if self.corrupt:
            found.append(f"corrupt: {self.corrupt}")
        if self.archive_changed:
            found.append(f"archive: {self.archive_changed}")
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "archive": str(self.archive),
            "name": self.archive.name,
            "ok": self.ok,
            "sha256": self.sha256,
            "size": self.size,
            "members_checked": self.checked,
            "changed": self.changed,
            "missing": self.missing,
            "extra": self.extra,
            "corrupt": self.corrupt,
            "archive_changed": self.archive_changed,
            "manifest": self.manifest.summary() if self.manifest else None,
        }


def _digest(stream: Any) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(READ_SIZE)
    view = memoryview(buffer)
    while count := stream.readinto(buffer):
        digest.update(view[:count])
    return digest.hexdigest()


def _differs(entry: Entry, info: Any, stream: Any) -> str | None:
    """Why this member does not match its manifest entry, or None when it does."""
    if not getattr(info, TAR_TYPES.get(entry.type, "isfile"))():
        return f"is not a {entry.type}"
    if entry.type == SYMLINK and info.linkname != entry.target:
        return "link target differs"
    if entry.type == FILE:
        if info.size != entry.size:
            return f"size {info.size} != {entry.size}"
        if _digest(stream) != entry.sha256:
            return "sha256 differs"
    return None


def verify_archive(path: Path) -> VerifyReport:
    """Every difference between the archive and its manifest; never raises for damage."""
    report = VerifyReport(path)
    try:
        with ArchiveReader(path) as archive:
            report.manifest = archive.manifest
            expected = {entry.path: entry for entry in archive.manifest.entries}
            seen: set[str] = set()
            for info, stream in archive.members():
                entry = expected.get(info.name)
                if entry is None or info.name in seen:
                    report.extra.append(info.name)
                    continue
                seen.add(info.name)
                report.checked += 1
                why = _differs(entry, info, stream)
                if why:
                    report.changed.append(f"{info.name} ({why})")
            report.missing = [name for name in expected if name not in seen]
            report.sha256, report.size = archive.finish()
    except CorruptArchive as exc:
        report.corrupt = str(exc)
    except DAMAGE as exc:  # raised while a member's data was read
        report.corrupt = f"{path} is corrupt or truncated: {exc}"
    except OpsError as exc:  # unreadable file or damaged manifest
        report.corrupt = str(exc)
    created_sha256 = read_sidecar_raw(path).get("created_sha256")
    if created_sha256 and report.sha256 and report.sha256 != created_sha256:
        report.archive_changed = (
            f"sha256 {report.sha256} differs from {created_sha256} recorded when it was created"
        )
    if path.is_file():
        write_sidecar(path, report.sha256, report.manifest, verified=report.ok)
    return report

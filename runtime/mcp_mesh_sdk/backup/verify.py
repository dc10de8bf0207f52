"""`backup verify`: authenticate the archive and re-hash every member against its manifest, in
one streaming pass.

An encrypted archive verifies only when age opens it with the host's identity and its manifest
carries that identity's HMAC (`encryption.py`), and when its name's time is the manifest's (an
older archive renamed to pass for the latest does not verify). A legacy, unencrypted archive can
still verify its members, and is reported as unencrypted (legacy): nothing authenticates it.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.backup.encryption import BackupKey, NotAuthentic, is_encrypted
from mcp_mesh_sdk.backup.manifest import FILE, SYMLINK, Entry, Manifest
from mcp_mesh_sdk.backup.names import time_from_name
from mcp_mesh_sdk.backup.reader import DAMAGE, READ_SIZE, ArchiveReader, CorruptArchive
from mcp_mesh_sdk.backup.sidecar import read_sidecar_raw, write_sidecar
from mcp_mesh_sdk.errors import OpsError

TAR_TYPES = {FILE: "isfile", "dir": "isdir", SYMLINK: "issym"}
LEGACY = "unencrypted (legacy): not authenticated"


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
    archive_changed: str | None = None  # its bytes differ from what `create` wrote, or renamed
    unauthentic: str | None = None  # age refused it, or the manifest's HMAC does not match
    encrypted: bool | None = None  # None: not known (unreadable)

    @property
    def ok(self) -> bool:
        problems = self.changed or self.missing or self.extra
        return not (problems or self.corrupt or self.archive_changed or self.unauthentic)

    def problems(self) -> list[str]:
        found = [f"not authentic: {self.unauthentic}"] if self.unauthentic else []
        found += [f"changed: {p}" for p in self.changed]
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
            "unauthentic": self.unauthentic,
            "encrypted": self.encrypted,
            "authenticated": self.ok and self.encrypted is True,
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


def verify_archive(path: Path, key: BackupKey | None) -> VerifyReport:
    """Every difference between the archive and its manifest, and whether it is authentic;
    never raises for damage. `key` opens encrypted archives."""
    report = VerifyReport(path)
    with contextlib.suppress(OpsError):
        report.encrypted = is_encrypted(path)
    try:
        with ArchiveReader(path, key) as archive:
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
    except NotAuthentic as exc:
        report.unauthentic = exc.reason
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
    named = time_from_name(path.name)
    if report.encrypted and report.manifest and named and named != report.manifest.created_at:
        report.archive_changed = (
            f"its name says it was made at {named}, its manifest at "
            f"{report.manifest.created_at}: renamed"
        )
    if path.is_file():
        write_sidecar(path, report.sha256, report.manifest, verified=report.ok)
    return report

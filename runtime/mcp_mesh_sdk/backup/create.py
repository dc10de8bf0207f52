"""`backup create`: stream the sources into a new archive, atomically, in constant memory.

The members are written first to a temporary body file (tar -> parallel gzip), hashing each
file as it streams. The manifest, which needs those hashes but must come first, is then written
to the final temporary file followed by a copy of the body (hashing the archive on the way),
fsynced and renamed into place. A failure leaves no archive and no temporary file behind.
"""

from __future__ import annotations

import grp
import hashlib
import io
import os
import pwd
import socket
import stat
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from mcp_mesh_sdk import __version__
from mcp_mesh_sdk.atomicfile import fsync_directory
from mcp_mesh_sdk.backup.catalog import ARCHIVE_PREFIX, ARCHIVE_SUFFIX, write_sidecar
from mcp_mesh_sdk.backup.gzstream import GZIP_WBITS, ParallelGzipWriter, SequentialHasher
from mcp_mesh_sdk.backup.manifest import DIRECTORY, FILE, MANIFEST_NAME, SYMLINK, Entry, Manifest
from mcp_mesh_sdk.backup.sources import Sources
from mcp_mesh_sdk.backup.tarstream import TarStream
from mcp_mesh_sdk.errors import OpsError

COPY_SIZE = 4 << 20
Progress = Callable[[int, int], None]  # (bytes archived, members archived)


@dataclass(frozen=True)
class CreateResult:
    name: str
    path: Path
    size: int
    sha256: str
    manifest: Manifest
    skipped: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "size": self.size,
            "sha256": self.sha256,
            **self.manifest.summary(),
            "warnings": self.manifest.warnings,
            "skipped": self.skipped,
        }


@cache
def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@cache
def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def archive_name(host: str, when: datetime) -> str:
    stamp = when.strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"
    return f"{ARCHIVE_PREFIX}{host}-{stamp}{ARCHIVE_SUFFIX}"


def _walk(root: Path, excluded: set[tuple[int, int]]) -> Iterator[tuple[Path, os.stat_result]]:
    """`root` and everything below it, parents before children, sorted, never following links."""
    stack = [root]
    while stack:
        path = stack.pop()
        info = path.lstat()
        if (info.st_dev, info.st_ino) in excluded:
            continue
        yield path, info
        if stat.S_ISDIR(info.st_mode):
            with os.scandir(path) as listing:
                children = sorted((entry.name for entry in listing), reverse=True)
            stack.extend(path / name for name in children)


def _entry(name: str, info: os.stat_result, kind: str, **extra: Any) -> Entry:
    return Entry(
        path=name,
        type=kind,
        mode=stat.S_IMODE(info.st_mode),
        uid=info.st_uid,
        gid=info.st_gid,
        owner=_owner(info.st_uid),
        group=_group(info.st_gid),
        mtime=info.st_mtime,
        **extra,
    )


def _tarinfo(entry: Entry, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.type = {FILE: tarfile.REGTYPE, DIRECTORY: tarfile.DIRTYPE, SYMLINK: tarfile.SYMTYPE}[
        entry.type
    ]
    info.mode, info.uid, info.gid = entry.mode, entry.uid, entry.gid
    info.uname, info.gname, info.size = entry.owner, entry.group, size
    info.mtime = int(entry.mtime)  # a float would cost a pax header per member
    info.linkname = entry.target or ""
    return info


class _Archiver:
    def __init__(self, tar: TarStream, hasher: SequentialHasher, progress: Progress | None) -> None:
        self.tar = tar
        self.hasher = hasher
        self.digests: list[tuple[Entry, Any]] = []
        self.entries: list[Entry] = []
        self.warnings: list[str] = []
        self.skipped: list[str] = []
        self.bytes_done = 0
        self.progress = progress
        self._last_report = 0.0

    def add_root(self, root_name: str, root: Path, excluded: set[tuple[int, int]]) -> None:
        for path, info in _walk(root, excluded):
            relative = path.relative_to(root).as_posix()
            name = root_name if relative == "." else f"{root_name}/{relative}"
            self._add(path, name, info)

    def _add(self, path: Path, name: str, info: os.stat_result) -> None:
        mode = info.st_mode
        entry: Entry | None
        if stat.S_ISDIR(mode):
            entry = _entry(name, info, DIRECTORY)
            self.tar.add_entry(_tarinfo(entry))
        elif stat.S_ISLNK(mode):
            entry = _entry(name, info, SYMLINK, target=str(path.readlink()))
            self.tar.add_entry(_tarinfo(entry))
        elif stat.S_ISREG(mode):
            entry = self._add_file(path, name, info)
        else:
            self.skipped.append(f"{path} (not a regular file, directory or link)")
            entry = None
        if entry is not None:
            self.entries.append(entry)
        self._report()

    def _add_file(self, path: Path, name: str, info: os.stat_result) -> Entry | None:
        try:
            source = path.open("rb", buffering=0)
        except FileNotFoundError:
            self.skipped.append(f"{path} (removed while the backup ran)")
            return None
        except OSError as exc:
            raise OpsError(f"cannot read {path}: {exc.strerror or exc}") from exc
        with source:
            size = os.fstat(source.fileno()).st_size
            entry = _entry(name, info, FILE, size=size, sha256="")
            digest, shrank = self.tar.add_file(_tarinfo(entry, size), source, self.hasher)
            if shrank or os.fstat(source.fileno()).st_size != size:
                self.warnings.append(f"{path} changed while it was read")
        self.bytes_done += size
        self.digests.append((entry, digest))
        return entry

    def resolve_digests(self) -> None:
        """Fill in every file's sha256 once the hasher has caught up."""
        self.hasher.wait()
        for entry, digest in self.digests:
            object.__setattr__(entry, "sha256", digest.hexdigest())  # the entry is ours alone
        self.digests.clear()

    def _report(self) -> None:
        now = time.monotonic()
        if self.progress is not None and now - self._last_report >= 0.2:
            self._last_report = now
            self.progress(self.bytes_done, len(self.entries))


def _excluded_identities(paths: list[Path]) -> set[tuple[int, int]]:
    found = set()
    for path in paths:
        try:
            info = path.lstat()
        except OSError:
            continue
        found.add((info.st_dev, info.st_ino))
    return found


def create_backup(
    sources: Sources,
    level: int = 1,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> CreateResult:
    """Write a new archive into `sources.backup_dir`; see the module docstring."""
    from mcp_mesh_sdk.migrate import schema_version

    when = now or datetime.now(UTC)
    host = socket.gethostname().split(".", 1)[0]
    out_dir = sources.backup_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise OpsError(f"cannot create the backup directory {out_dir}: {exc.strerror}") from exc
    name = archive_name(host, when)
    final = out_dir / name
    body_path = out_dir / f".{name}.body.tmp"
    final_tmp = out_dir / f".{name}.tmp"
    roots = {root: path for root, path in sources.roots().items() if path.exists()}
    missing = [f"{root} ({path}) does not exist" for root, path in sources.roots().items()
               if root not in roots]  # fmt: skip
    try:
        hasher = SequentialHasher()
        with body_path.open("wb", buffering=0) as body:
            writer = ParallelGzipWriter(body, level)
            archiver = _Archiver(TarStream(writer), hasher, progress)
            try:
                for root, path in roots.items():
                    others = [p for r, p in roots.items() if r != root and p != path]
                    excluded = _excluded_identities([out_dir, *others])
                    archiver.add_root(root, path, excluded)
                archiver.tar.close()
                writer.close()
                archiver.resolve_digests()
            except BaseException:
                writer.abort()
                hasher.close()
                raise
        manifest = Manifest(
            created_at=when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            host=host,
            agent_version=__version__,
            schema_version=schema_version(sources.state_dir) if "state" in roots else 0,
            roots={root: str(path) for root, path in roots.items()},
            entries=archiver.entries,
            warnings=missing + archiver.warnings,
        )
        try:
            digest, size = _assemble(final_tmp, manifest, body_path, level, hasher)
        finally:
            hasher.close()
        final_tmp.replace(final)
        fsync_directory(out_dir)
    except OSError as exc:
        raise OpsError(f"backup failed: {exc}") from exc
    finally:
        body_path.unlink(missing_ok=True)
        final_tmp.unlink(missing_ok=True)
    write_sidecar(final, digest, manifest, verified=None, created=True)
    return CreateResult(name, final, size, digest, manifest, archiver.skipped)


def _assemble(
    target: Path, manifest: Manifest, body_path: Path, level: int, hasher: SequentialHasher
) -> tuple[str, int]:
    """Manifest member, then the body; returns (sha256, size) of what was written."""
    header_tar = io.BytesIO()
    info = tarfile.TarInfo(MANIFEST_NAME)
    info.mode, info.mtime = 0o600, time.time()
    TarStream(header_tar).add_bytes(info, manifest.to_bytes())
    first = zlib.compress(header_tar.getvalue(), level, GZIP_WBITS)
    digest = hashlib.sha256(first)
    size = len(first)
    with target.open("wb", buffering=0) as out, body_path.open("rb", buffering=0) as body:
        out.write(first)
        while block := body.read(COPY_SIZE):  # a new buffer each time: hashed meanwhile
            hasher.update(digest, block)
            out.write(block)
            size += len(block)
        hasher.wait()
        os.fchmod(out.fileno(), 0o600)
        os.fsync(out.fileno())
    return digest.hexdigest(), size

"""`backup create`: stream the sources into a new archive, atomically, in constant memory.

The backup identity is loaded first (`encryption.py`): without it nothing is written. The tree
is scanned (paths and lstat only), which bounds the manifest's size. The plaintext archive is
built in a private scratch file, unlinked as soon as it is created: its first bytes are reserved
for the manifest; the members are streamed after that space (tar -> parallel gzip), each file
hashed on another core as it goes. The manifest, which needs those hashes, is then written into
the reserved space as a stored gzip member with its HMAC, followed by empty gzip members whose
header "extra" field fills what is left (readers skip them). Should the manifest outgrow its
space (a tree that grew during the backup), the plaintext is rewritten with the manifest in
front instead. The plaintext is then encrypted with age, streaming, into the archive (hashed as
it is written), which is fsynced and renamed into place. A failure leaves no archive and no
temporary file behind; the backup directory and the identity file are never archived.

In the data directory (BASE_DIRECTORY), names starting with `.mcp-mesh-` belong to the agent
itself, not to its clients: temporary files of writes in flight and the folders of the release
smoke test. list_directory hides them, and the backup leaves them (and all below them) out.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import sqlite3
import stat
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

from mcp_mesh_sdk import __version__
from mcp_mesh_sdk.agent.paths import AGENT_OWN_PREFIX
from mcp_mesh_sdk.atomicfile import fsync_directory
from mcp_mesh_sdk.backup import layout, sqlitesnap
from mcp_mesh_sdk.backup.catalog import this_host
from mcp_mesh_sdk.backup.encryption import BackupKey, encrypt_to, load_key
from mcp_mesh_sdk.backup.gzstream import ParallelGzipWriter, SequentialHasher, deflate, engine
from mcp_mesh_sdk.backup.manifest import DIRECTORY, FILE, SYMLINK, Entry, Manifest
from mcp_mesh_sdk.backup.names import ARCHIVE_PREFIX, ARCHIVE_SUFFIX
from mcp_mesh_sdk.backup.sidecar import write_sidecar
from mcp_mesh_sdk.backup.sources import Sources
from mcp_mesh_sdk.backup.tarstream import TarStream
from mcp_mesh_sdk.errors import OpsError
from mcp_mesh_sdk.migrate import schema_version

COPY_SIZE = 4 << 20
Progress = Callable[[int, int, int], None]  # (bytes archived, bytes in all, members)


@dataclass(frozen=True)
class CreateResult:
    name: str
    path: Path
    size: int
    sha256: str
    manifest: Manifest
    skipped: list[str]
    compression: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "size": self.size,
            "sha256": self.sha256,
            "compression": self.compression,
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


def _walk(
    root: Path, excluded: set[tuple[int, int]], hidden: str | None = None
) -> Iterator[tuple[Path, os.stat_result]]:
    """`root` and everything below it, parents before children, sorted, never following links;
    without entries whose name starts with `hidden` (nor anything below them)."""
    stack = [root]
    while stack:
        path = stack.pop()
        info = path.lstat()
        if (info.st_dev, info.st_ino) in excluded:
            continue
        yield path, info
        if stat.S_ISDIR(info.st_mode):
            with os.scandir(path) as listing:
                names = [entry.name for entry in listing]
            if hidden:
                names = [name for name in names if not name.startswith(hidden)]
            stack.extend(path / name for name in sorted(names, reverse=True))


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


@dataclass(frozen=True)
class _Item:
    """One path found by the scan."""

    path: Path
    name: str  # in the archive
    info: os.stat_result


def _scan(roots: dict[str, Path], left_out: list[Path]) -> list[_Item]:
    """Every path to archive, root by root, without reading any file's content; never the
    paths in `left_out` (the backup directory, the backup identity) nor anything below them."""
    items = []
    for root, path in roots.items():
        others = [p for r, p in roots.items() if r != root and p != path]
        excluded = _excluded_identities([*left_out, *others])
        hidden = AGENT_OWN_PREFIX if root == "data" else None
        for found, info in _walk(path, excluded, hidden):
            if stat.S_ISREG(info.st_mode) and sqlitesnap.is_companion(found):
                continue  # the database is archived as a consistent snapshot instead
            relative = found.relative_to(path).as_posix()
            name = root if relative == "." else f"{root}/{relative}"
            items.append(_Item(found, name, info))
    return items


def _bound(item: _Item) -> int:
    info = item.info
    target = info.st_size if stat.S_ISLNK(info.st_mode) else 0  # a link's size: its target's
    return layout.entry_bound(item.name, _owner(info.st_uid), _group(info.st_gid), target + 16)


class _Archiver:
    def __init__(
        self,
        tar: TarStream,
        hasher: SequentialHasher,
        progress: Progress | None,
        total: int,
        scratch: Path,
    ) -> None:
        self.tar = tar
        self.scratch = scratch  # where database snapshots are made (the backup directory)
        self.hasher = hasher
        self.digests: list[tuple[Entry, Any]] = []
        self.entries: list[Entry] = []
        self.warnings: list[str] = []
        self.skipped: list[str] = []
        self.bytes_done = 0
        self.total = total
        self.progress = progress
        self._last_report = 0.0

    def add(self, item: _Item) -> None:
        path, name, info = item.path, item.name, item.info
        mode = info.st_mode
        entry: Entry | None
        if stat.S_ISDIR(mode):
            entry = _entry(name, info, DIRECTORY)
            self.tar.add_entry(_tarinfo(entry))
        elif stat.S_ISLNK(mode):
            try:
                target = str(path.readlink())
            except FileNotFoundError:
                self.skipped.append(f"{path} (removed while the backup ran)")
                return
            entry = _entry(name, info, SYMLINK, target=target)
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
        if path.name.endswith(".db") and sqlitesnap.is_sqlite(path):
            return self._add_database(path, name, info)
        return self._stream_file(path, path, name, info)

    def _add_database(self, path: Path, name: str, info: os.stat_result) -> Entry | None:
        copy = self.scratch / f".{path.name}.snapshot.tmp"
        try:
            sqlitesnap.snapshot(path, copy)
        except (sqlite3.Error, OSError) as exc:
            copy.unlink(missing_ok=True)
            self.warnings.append(f"{path}: no consistent snapshot ({exc}); copied as it was")
            return self._stream_file(path, path, name, info)
        try:
            return self._stream_file(copy, path, name, info)
        finally:
            copy.unlink(missing_ok=True)

    def _stream_file(
        self, source_path: Path, path: Path, name: str, info: os.stat_result
    ) -> Entry | None:
        """Archive `source_path`'s bytes as `name`, with `path`'s owner, mode and time."""
        try:
            source = source_path.open("rb", buffering=0)
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
            self.progress(self.bytes_done, self.total, len(self.entries))


def _excluded_identities(paths: list[Path]) -> set[tuple[int, int]]:
    found = set()
    for path in paths:
        try:
            info = path.lstat()
        except OSError:
            continue
        found.add((info.st_dev, info.st_ino))
    return found


DEFAULT_LEVEL = 1


@contextlib.contextmanager
def _scratch(path: Path) -> Iterator[BinaryIO]:
    """A private scratch file for the plaintext archive: created exclusively (0600, never
    through a link) and unlinked at once, so no name ever leads to it and nothing of it
    outlives the process, however it ends."""
    handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        path.unlink()
        with os.fdopen(handle, "w+b", buffering=0) as scratch:
            yield scratch
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def create_backup(
    sources: Sources,
    level: int | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> CreateResult:
    """Write a new archive into `sources.backup_dir`; see the module docstring.

    `level` None: gzip level 1, adaptive (chunks the compressors cannot keep up with are
    stored); a number: that level for every compressible chunk, however long it takes.
    """
    key = load_key(sources.identity_file)
    adaptive = level is None
    level = DEFAULT_LEVEL if level is None else level
    when = now or datetime.now(UTC)
    host = this_host()
    out_dir = sources.backup_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise OpsError(f"cannot create the backup directory {out_dir}: {exc.strerror}") from exc
    name = archive_name(host, when)
    final = out_dir / name
    temporary = out_dir / f".{name}.tmp"
    roots = {root: path for root, path in sources.roots().items() if path.exists()}
    missing = [f"{root} ({path}) does not exist" for root, path in sources.roots().items()
               if root not in roots]  # fmt: skip
    hasher = SequentialHasher()
    try:
        items = _scan(roots, [out_dir, sources.identity_file])
        reserved = layout.reserve_for(sum(_bound(item) for item in items))
        total = sum(item.info.st_size for item in items if stat.S_ISREG(item.info.st_mode))
        with _scratch(out_dir / f".{name}.plain.tmp") as plain:
            plain.seek(reserved)
            writer = ParallelGzipWriter(plain, level, adaptive=adaptive)
            archiver = _Archiver(TarStream(writer), hasher, progress, total, out_dir)
            try:
                for item in items:
                    archiver.add(item)
                archiver.tar.close()
                writer.close()
            except BaseException:
                writer.abort()
                raise
            archiver.resolve_digests()
            manifest = Manifest(
                created_at=when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                host=host,
                agent_version=__version__,
                schema_version=schema_version(sources.state_dir) if "state" in roots else 0,
                roots={root: str(path) for root, path in roots.items()},
                entries=archiver.entries,
                warnings=missing + archiver.warnings,
            )
            front = layout.region(manifest, key, reserved)
            if front is not None:
                os.pwrite(plain.fileno(), front, 0)
                digest, size = _encrypt(plain, 0, temporary, key)
            else:  # the tree grew past the estimate: manifest in front, body copied after it
                first = deflate(layout.manifest_tar(manifest, key), level)
                with _scratch(out_dir / f".{name}.rewrite.tmp") as rewritten:
                    rewritten.write(first)
                    plain.seek(reserved)
                    shutil.copyfileobj(plain, rewritten, COPY_SIZE)
                    digest, size = _encrypt(rewritten, 0, temporary, key)
        temporary.replace(final)
        fsync_directory(out_dir)
    except OSError as exc:
        raise OpsError(f"backup failed: {exc}") from exc
    finally:
        hasher.close()
        temporary.unlink(missing_ok=True)
    write_sidecar(final, digest, manifest, verified=None, created=True)
    compression = {
        "format": "gzip",
        "level": level,
        "engine": engine(level),  # isal (ISA-L) or zlib: the same gzip either way
        "adaptive": adaptive,
        "chunks": writer.chunks,
        "stored_to_keep_pace": writer.stored_for_speed,
    }
    return CreateResult(name, final, size, digest, manifest, archiver.skipped, compression)


def _encrypt(plain: BinaryIO, offset: int, target: Path, key: BackupKey) -> tuple[str, int]:
    """Encrypt `plain` from `offset` on into `target` (new, 0600), synced; its (sha256, size)."""
    plain.seek(offset)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    handle = os.open(target, flags, 0o600)
    try:
        with open(plain.fileno(), "rb", buffering=COPY_SIZE, closefd=False) as source:
            digest, size = encrypt_to(source, handle, key)
        os.fsync(handle)
    finally:
        os.close(handle)
    return digest, size

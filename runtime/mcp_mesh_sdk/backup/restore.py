"""`backup restore`: verify, extract beside each target, then swap it in atomically.

1. The archive is verified in full and must be authentic (`verify.py`); a corrupt or forged
   one, or one whose state schema is newer than this runtime's migrations, is refused before
   anything is written. A legacy, unencrypted archive is refused unless `allow_unencrypted`.
2. Each target comes from this host's configuration (env file, options), never from the
   archive: a root with no target here (BASE_DIRECTORY unset, say) is refused.
3. Members of the chosen roots are extracted into a staging directory beside each target
   (`.<target>.restore-<time>-<random>`: same filesystem, so the swap is a rename). It is made
   with mkdir, which never follows a link nor reuses anything there, opened with O_NOFOLLOW and
   checked to be the new, empty directory this process owns; every member is then written
   relative to that descriptor, one name at a time with O_NOFOLLOW, so a link planted or swapped
   in by whoever can write the target's parent cannot lead a write elsewhere. Paths with `..`,
   absolute paths, links pointing outside their root and special files are refused, and every
   file is hashed again against the manifest as it lands. setuid, setgid and sticky bits are
   never restored.
4. Each target is exchanged with its staging copy (`renameat2(RENAME_EXCHANGE)`, two renames
   where that is unsupported), once the staging path is checked to still be the directory
   written; the replaced content stays as `<target>.pre-restore-<time>` and older rollback
   copies are removed. A failure at any step undoes the swaps already made, so the previous
   state stays in place.
Owners and modes come from the manifest (owners only when running as root).
"""

from __future__ import annotations

import ctypes
import errno
import grp
import hashlib
import os
import posixpath
import pwd
import secrets
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.backup.encryption import BackupKey
from mcp_mesh_sdk.backup.manifest import DIRECTORY, FILE, SYMLINK, Entry, Manifest
from mcp_mesh_sdk.backup.reader import DAMAGE, READ_SIZE, ArchiveReader
from mcp_mesh_sdk.backup.sources import Sources, is_within
from mcp_mesh_sdk.backup.tarread import TarReader
from mcp_mesh_sdk.backup.verify import LEGACY, verify_archive
from mcp_mesh_sdk.errors import OpsError
from mcp_mesh_sdk.migrate import latest_schema_version

MODES = {"config": ("config", "env"), "data": ("data",), "full": ("config", "env", "state", "data")}
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
_WHERE_SET = {
    "config": "--config-dir",
    "env": "--env-file",
    "state": "MCP_MESH_STATE_DIR in the env file, or --state-dir",
    "data": "BASE_DIRECTORY in the env file, or --data-dir",
}


class RestoreRefused(OpsError):
    exit_code = 1


class UndoFailed(OpsError):
    """A swap failed and putting the previous state back failed too: nothing is deleted."""


def _exchange(first: Path, second: Path) -> None:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(first))


def _swap_paths(first: Path, second: Path) -> None:
    try:
        _exchange(first, second)
    except (OSError, AttributeError) as exc:
        if isinstance(exc, OSError) and exc.errno not in (errno.EINVAL, errno.ENOSYS):
            raise
        spare = first.with_name(first.name + ".swap")
        first.rename(spare)
        second.rename(first)
        spare.rename(second)


@dataclass
class Target:
    root: str
    path: Path
    staging: Path
    rollback: Path
    kind: str = DIRECTORY  # what the archive holds for it: a directory, or a file (the env)
    replaced: bool = False
    handle: int | None = None  # the staging directory, opened without following links
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of what was staged


@dataclass
class RestoreResult:
    archive: Path
    mode: str
    manifest: Manifest
    targets: list[Target]
    members: int = 0
    bytes: int = 0
    warnings: list[str] = field(default_factory=list)
    encrypted: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "archive": str(self.archive),
            "mode": self.mode,
            "encrypted": self.encrypted,
            "restored": [
                {
                    "root": t.root,
                    "path": str(t.path),
                    "rollback": str(t.rollback) if t.replaced else None,
                }
                for t in self.targets
            ],
            "members": self.members,
            "bytes": self.bytes,
            "schema_version": self.manifest.schema_version,
            "needs_migrate": self.manifest.schema_version < latest_schema_version(),
            "warnings": self.warnings,
        }


def _destinations(manifest: Manifest, sources: Sources) -> dict[str, Path]:
    """Where each root of the archive goes: this host's paths only (never the recorded ones)."""
    current = {
        "config": sources.config_dir,
        "env": sources.env_file,
        "state": sources.state_dir,
        "data": sources.data_dir,
    }
    return {root: path for root in manifest.roots if (path := current.get(root)) is not None}


def _safe_relative(name: str) -> list[str]:
    """The member's path components, refusing anything that could leave its root."""
    if not name or name.startswith("/") or "\x00" in name or "\\" in name:
        raise RestoreRefused(f"refusing member {name!r}: absolute or malformed path")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise RestoreRefused(f"refusing member {name!r}: path leaves the target")
    return parts


def _check_link(entry: Entry, relative_in_root: str, root_path: Path) -> None:
    target = entry.target or ""
    if posixpath.isabs(target):
        if not is_within(Path(posixpath.normpath(target)), root_path):
            raise RestoreRefused(f"refusing link {entry.path} -> {target}: points outside")
        return
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative_in_root), target))
    if resolved == ".." or resolved.startswith("../") or not target:
        raise RestoreRefused(f"refusing link {entry.path} -> {target}: points outside")


def _make_staging(target: Target) -> None:
    """Create the target's staging directory, exclusively and without following a link."""
    try:
        target.staging.mkdir(mode=0o700)  # EEXIST for anything there, a link included
        handle = os.open(target.staging, _FOLDER)
    except OSError as exc:
        raise RestoreRefused(
            f"refusing to restore: cannot create the staging directory {target.staging}: "
            f"{exc.strerror}"
        ) from exc
    target.handle = handle
    info = os.fstat(handle)
    target.identity = (info.st_dev, info.st_ino)
    foreign = info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077
    if foreign or os.listdir(handle):  # noqa: PTH208 (a descriptor, not a path)
        raise RestoreRefused(
            f"refusing to restore: {target.staging} was replaced while it was being created"
        )


def _check_staged(target: Target) -> None:
    """The staging path still names what was written (nothing swapped in meanwhile)."""
    try:
        info = os.lstat(target.staging)
    except OSError as exc:
        raise RestoreRefused(f"the staging path {target.staging} is gone: {exc.strerror}") from exc
    if (info.st_dev, info.st_ino) != target.identity:
        raise RestoreRefused(f"refusing to restore: {target.staging} was replaced meanwhile")


class _Extractor:
    """Writes members below each target's staging directory, through its descriptor."""

    def __init__(self, bases: dict[str, tuple[Target, list[str]]], as_root: bool) -> None:
        # root -> (the target whose staging holds it, its path below the staging directory)
        self.bases = bases
        self.as_root = as_root
        self.directories: list[tuple[Target, list[str], Entry]] = []
        self.extracted: set[str] = set()
        self.warnings: list[str] = []
        self.members = 0
        self.bytes = 0
        self._folder: tuple[int, tuple[str, ...], int] | None = None  # (target, parts, fd)

    def close(self) -> None:
        if self._folder is not None:
            os.close(self._folder[2])
            self._folder = None

    def _walk(self, target: Target, parts: Sequence[str], shown: str) -> int:
        """A new descriptor of the directory `parts` below the staging directory, reached one
        name at a time without following any link."""
        assert target.handle is not None
        handle = os.dup(target.handle)
        try:
            for part in parts:
                following = os.open(part, _FOLDER, dir_fd=handle)
                os.close(handle)
                handle = following
        except OSError as exc:
            os.close(handle)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                raise RestoreRefused(
                    f"refusing member {shown}: its directory is not a directory of the archive"
                ) from exc
            raise
        return handle

    def _parent(self, target: Target, parts: list[str], shown: str) -> int:
        """The descriptor of the directory holding `parts` (cached: members come in order)."""
        key = (id(target), tuple(parts[:-1]))
        if self._folder is None or self._folder[:2] != key:
            self.close()
            self._folder = (*key, self._walk(target, parts[:-1], shown))
        return self._folder[2]

    def _mode(self, entry: Entry) -> int:
        if entry.mode & _SPECIAL_BITS:
            self.warnings.append(
                f"{entry.path}: setuid/setgid/sticky bits not restored (mode {entry.mode:04o})"
            )
        return entry.mode & 0o777

    def extract(self, entry: Entry, stream: TarReader | None, destination_root: Path) -> None:
        parts = _safe_relative(entry.path)
        target, prefix = self.bases[parts[0]]
        relative = "/".join(parts[1:])
        below = prefix + parts[1:]  # below the staging directory
        if not below:  # the target itself
            if entry.type != target.kind:
                raise RestoreRefused(f"refusing member {entry.path}: type {entry.type}")
            if entry.type == DIRECTORY:
                self.directories.append((target, below, entry))
            else:
                handle = os.open(target.staging, _NEW_FILE, 0o600)
                target.identity = self._write_file(handle, entry, stream)
            self._done(entry)
            return
        parent = self._parent(target, below, entry.path)
        name = below[-1]
        if entry.type == DIRECTORY:
            os.mkdir(name, 0o700, dir_fd=parent)
            self.directories.append((target, below, entry))
        elif entry.type == FILE:
            self._write_file(os.open(name, _NEW_FILE, 0o600, dir_fd=parent), entry, stream)
        elif entry.type == SYMLINK:
            _check_link(entry, relative, destination_root)
            os.symlink(entry.target or "", name, dir_fd=parent)
            if self.as_root:
                os.chown(name, *_ids(entry), dir_fd=parent, follow_symlinks=False)
        else:
            raise RestoreRefused(f"refusing member {entry.path}: type {entry.type}")
        self._done(entry)

    def _done(self, entry: Entry) -> None:
        self.extracted.add(entry.path)
        self.members += 1

    def _write_file(self, handle: int, entry: Entry, stream: TarReader | None) -> tuple[int, int]:
        """Fill the new file `handle` from `stream`; its (st_dev, st_ino)."""
        digest = hashlib.sha256()
        buffer = bytearray(READ_SIZE)
        view = memoryview(buffer)
        with os.fdopen(handle, "wb", buffering=0) as out:
            if stream is None:
                raise RestoreRefused(f"member {entry.path} has no data")
            while count := stream.readinto(buffer):
                digest.update(view[:count])
                out.write(view[:count])
                self.bytes += count
            if self.as_root:
                os.fchown(out.fileno(), *_ids(entry))
            os.fchmod(out.fileno(), self._mode(entry))  # after fchown, which clears setuid
            os.utime(out.fileno(), (entry.mtime, entry.mtime))
            info = os.fstat(out.fileno())
        if digest.hexdigest() != entry.sha256:
            raise RestoreRefused(f"{entry.path} changed since verification (sha256 differs)")
        return info.st_dev, info.st_ino

    def finish_directories(self) -> None:
        """Modes, owners and times of directories, deepest first (after their contents)."""
        self.close()
        for target, below, entry in sorted(self.directories, key=lambda d: len(d[1]), reverse=True):
            handle = self._walk(target, below, entry.path)
            try:
                if self.as_root:
                    os.fchown(handle, *_ids(entry))
                os.fchmod(handle, self._mode(entry))
                os.utime(handle, (entry.mtime, entry.mtime))
            finally:
                os.close(handle)


def _ids(entry: Entry) -> tuple[int, int]:
    """Owner and group by name when this host knows the name, else by number."""
    try:
        uid = pwd.getpwnam(entry.owner).pw_uid
    except KeyError:
        uid = entry.uid
    try:
        gid = grp.getgrnam(entry.group).gr_gid
    except KeyError:
        gid = entry.gid
    return uid, gid


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _refuse_unverified(archive: Path, key: BackupKey | None, allow_unencrypted: bool) -> Any:
    """The verification report of an archive that may be restored; RestoreRefused otherwise."""
    report = verify_archive(archive, key)
    if not report.ok or report.manifest is None:
        problems = "; ".join(report.problems()[:5])
        raise RestoreRefused(f"refusing to restore {archive.name}: it does not verify: {problems}")
    if not report.encrypted and not allow_unencrypted:
        raise RestoreRefused(
            f"refusing to restore {archive.name}: it is {LEGACY}, so nothing shows it was not "
            "forged; restore it anyway only if you trust it: --allow-unencrypted"
        )
    return report


def _plan(
    archive: Path, manifest: Manifest, mode: str, sources: Sources, stamp: str
) -> tuple[list[Target], dict[str, tuple[Target, list[str]]], list[str], dict[str, Path]]:
    """The targets (outermost paths) to swap, where each root lands, the roots restored and
    every root's path on this host."""
    destinations = _destinations(manifest, sources)
    wanted = [root for root in MODES[mode] if root in manifest.roots]
    unset = [root for root in wanted if root not in destinations]
    if unset:
        where = "; ".join(f"{root}: {_WHERE_SET[root]}" for root in unset)
        raise RestoreRefused(
            f"refusing to restore {archive.name}: this host sets no place to restore "
            f"{', '.join(unset)} to (the archive's own paths are never used): {where}"
        )
    if not wanted:
        raise RestoreRefused(f"{archive.name} holds nothing for --mode {mode}")
    kinds = {entry.path: entry.type for entry in manifest.entries if "/" not in entry.path}
    targets: list[Target] = []
    for root in wanted:
        path = destinations[root]
        if not any(destinations[o] in path.parents for o in wanted if o != root):
            unique = f"{stamp}-{secrets.token_hex(4)}"
            staging = path.with_name(f".{path.name}.restore-{unique}")
            rollback = path.with_name(f"{path.name}.pre-restore-{stamp}")
            kind = kinds.get(root, DIRECTORY)
            targets.append(Target(root, path, staging, rollback, kind))
    bases: dict[str, tuple[Target, list[str]]] = {}
    for root in wanted:
        path = destinations[root]
        for target in targets:
            if target.path == path or target.path in path.parents:
                bases[root] = (target, list(path.relative_to(target.path).parts))
    return targets, bases, wanted, destinations


def restore_backup(
    archive: Path,
    mode: str,
    sources: Sources,
    now: datetime | None = None,
    key: BackupKey | None = None,
    allow_unencrypted: bool = False,
) -> RestoreResult:
    """Restore `mode` (config, data or full) from `archive`; see the module docstring."""
    if mode not in MODES:
        raise OpsError(f"--mode must be one of {', '.join(MODES)}")
    report = _refuse_unverified(archive, key, allow_unencrypted)
    manifest: Manifest = report.manifest
    known = latest_schema_version()
    if manifest.schema_version > known:
        raise RestoreRefused(
            f"refusing to restore {archive.name}: its state schema {manifest.schema_version} is "
            f"newer than this runtime understands ({known}); upgrade mcp-mesh-sdk first"
        )
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"
    targets, bases, chosen, destinations = _plan(archive, manifest, mode, sources, stamp)

    result = RestoreResult(archive, mode, manifest, targets, encrypted=bool(report.encrypted))
    if not report.encrypted:
        result.warnings.append(f"{archive.name} is {LEGACY}: restored as asked")
    result.warnings += _leftovers(targets)
    extractor = _Extractor(bases, as_root=os.geteuid() == 0)
    try:
        for target in targets:
            target.path.parent.mkdir(parents=True, exist_ok=True)
            if target.kind == DIRECTORY:
                _make_staging(target)
        _extract_all(archive, key, manifest, extractor, chosen, destinations)
        extractor.finish_directories()
        result.members, result.bytes = extractor.members, extractor.bytes
        for target in targets:
            _check_staged(target)
        _swap_all(targets)
    except BaseException as exc:
        if isinstance(exc, UndoFailed):
            raise
        for target in targets:
            if target.identity is not None:  # only what this restore made
                _remove(target.staging)
        if isinstance(exc, (OSError, *DAMAGE)):
            raise OpsError(f"restore failed, previous state kept: {exc}") from exc
        raise
    finally:
        extractor.close()
        for target in targets:
            if target.handle is not None:
                os.close(target.handle)
                target.handle = None
    result.warnings += extractor.warnings
    result.warnings += _carry_over(targets, sources, chosen, destinations)
    for target in targets:
        _prune_rollbacks(target)
    return result


def _extract_all(
    archive: Path,
    key: BackupKey | None,
    manifest: Manifest,
    extractor: _Extractor,
    chosen: list[str],
    destinations: dict[str, Path],
) -> None:
    expected = {entry.path: entry for entry in manifest.entries}
    with ArchiveReader(archive, key) as reader:
        for info, stream in reader.members():
            root = _safe_relative(info.name)[0]  # refused even in a root not restored
            if root not in chosen:
                continue
            entry = expected.get(info.name)
            if entry is None:
                raise RestoreRefused(f"member {info.name} is not in the manifest")
            if root not in extractor.bases:
                continue
            try:
                extractor.extract(entry, stream, destinations[root])
            except FileExistsError as exc:
                raise RestoreRefused(f"member {info.name} appears twice") from exc
    missed = [
        e.path for e in manifest.entries if e.root in chosen and e.path not in extractor.extracted
    ]
    if missed:
        raise RestoreRefused(
            f"{archive.name} changed since it was verified: {len(missed)} members missing "
            f"(first {missed[0]})"
        )


def _swap_all(targets: list[Target]) -> None:
    done: list[Target] = []
    try:
        for target in targets:
            if target.path.exists() or target.path.is_symlink():
                _swap_paths(target.staging, target.path)
                try:
                    target.staging.rename(target.rollback)
                except BaseException:
                    _swap_paths(target.staging, target.path)
                    raise
                target.replaced = True
            else:
                target.staging.rename(target.path)
            done.append(target)
    except BaseException as failure:
        try:
            for target in reversed(done):  # put the previous state back
                if target.replaced:
                    _swap_paths(target.rollback, target.path)
                    target.rollback.rename(target.staging)
                    target.replaced = False
                else:
                    target.path.rename(target.staging)
        except OSError as exc:
            paths = ", ".join(f"{t.path} (previous: {t.rollback})" for t in done)
            raise UndoFailed(
                f"restore failed ({failure}) and undoing it failed too ({exc}); "
                f"nothing was deleted, check {paths}"
            ) from exc
        raise


def _carry_over(
    targets: list[Target], sources: Sources, chosen: list[str], destinations: dict[str, Path]
) -> list[str]:
    """Move back what lives inside a swapped target but was not restored: the backup directory,
    the backup identity (never archived), roots of another mode."""
    keep = [sources.backup_dir, sources.identity_file]
    keep += [p for r, p in destinations.items() if r not in chosen]
    warnings = []
    for target in targets:
        if not target.replaced:
            continue
        for path in keep:
            if target.path not in path.parents:
                continue
            relative = path.relative_to(target.path)
            source = target.rollback / relative
            if not (source.exists() or source.is_symlink()) or path.exists():
                continue
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                source.rename(path)
            except OSError as exc:
                warnings.append(f"could not move {source} back to {path}: {exc.strerror}")
    return warnings


def _leftovers(targets: list[Target]) -> list[str]:
    """Staging directories of interrupted restores: reported, never deleted (after a crash
    between the two renames of a swap, one may hold the previous state)."""
    found = []
    for target in targets:
        prefix = f".{target.path.name}.restore-"
        if target.path.parent.is_dir():
            found += [
                f"left by an interrupted restore, check and remove: {old}"
                for old in sorted(target.path.parent.iterdir())
                if old.name.startswith(prefix)
            ]
    return found


def _prune_rollbacks(target: Target) -> None:
    if not target.replaced:
        return
    prefix = f"{target.path.name}.pre-restore-"
    for old in target.path.parent.iterdir():
        if old.name.startswith(prefix) and old != target.rollback:
            _remove(old)

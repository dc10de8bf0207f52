"""`backup restore`: verify, extract beside each target, then swap it in atomically.

1. The archive is verified in full; a corrupt one, or one whose state schema is newer than
   this runtime's migrations, is refused before anything is written.
2. Members of the chosen roots are extracted into `.<target>.restore-<time>` beside each
   target (same filesystem, so the swap is a rename). Paths with `..`, absolute paths, links
   pointing outside their root, and special files are refused; nothing is written outside the
   staging directories, and every file is hashed again against the manifest as it lands.
3. Each target is exchanged with its staging copy (`renameat2(RENAME_EXCHANGE)`, two renames
   where that is unsupported); the replaced content stays as `<target>.pre-restore-<time>` and
   older rollback copies are removed. A failure at any step undoes the swaps already made, so
   the previous state stays in place.
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
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.backup.manifest import DIRECTORY, FILE, SYMLINK, Entry, Manifest
from mcp_mesh_sdk.backup.reader import DAMAGE, READ_SIZE, ArchiveReader
from mcp_mesh_sdk.backup.sources import Sources, is_within
from mcp_mesh_sdk.backup.tarread import TarReader
from mcp_mesh_sdk.backup.verify import verify_archive
from mcp_mesh_sdk.errors import OpsError
from mcp_mesh_sdk.migrate import latest_schema_version

MODES = {"config": ("config", "env"), "data": ("data",), "full": ("config", "env", "state", "data")}
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


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
    replaced: bool = False


@dataclass
class RestoreResult:
    archive: Path
    mode: str
    manifest: Manifest
    targets: list[Target]
    members: int = 0
    bytes: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "archive": str(self.archive),
            "mode": self.mode,
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
    current = {
        "config": sources.config_dir,
        "env": sources.env_file,
        "state": sources.state_dir,
        "data": sources.data_dir,
    }
    return {root: current.get(root) or Path(recorded) for root, recorded in manifest.roots.items()}


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


class _Extractor:
    def __init__(self, bases: dict[str, tuple[Path, Path]], as_root: bool) -> None:
        # root -> (where its top lands, the staging directory that holds it)
        self.bases = bases
        self.as_root = as_root
        self.directories: list[tuple[Path, Entry]] = []
        self.members = 0
        self.bytes = 0

    def extract(self, entry: Entry, stream: TarReader | None, destination_root: Path) -> None:
        parts = _safe_relative(entry.path)
        base, staging = self.bases[parts[0]]
        relative = "/".join(parts[1:])
        target = base / relative if relative else base
        inside = is_within(Path(os.path.realpath(target.parent)), Path(os.path.realpath(staging)))
        if not inside and target != staging:
            raise RestoreRefused(f"refusing member {entry.path}: its directory leaves the target")
        if entry.type == DIRECTORY:
            target.mkdir(mode=0o700, exist_ok=target == staging)
            self.directories.append((target, entry))
        elif entry.type == FILE:
            self._write_file(target, entry, stream)
        elif entry.type == SYMLINK:
            _check_link(entry, relative, destination_root)
            target.symlink_to(entry.target or "")
            self._own(target, entry, follow=False)
        else:
            raise RestoreRefused(f"refusing member {entry.path}: type {entry.type}")
        self.members += 1

    def _write_file(self, target: Path, entry: Entry, stream: TarReader | None) -> None:
        if stream is None:
            raise RestoreRefused(f"member {entry.path} has no data")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        handle = os.open(target, flags, 0o600)
        digest = hashlib.sha256()
        buffer = bytearray(READ_SIZE)
        view = memoryview(buffer)
        with os.fdopen(handle, "wb", buffering=0) as out:
            while count := stream.readinto(buffer):
                digest.update(view[:count])
                out.write(view[:count])
                self.bytes += count
            os.fchmod(out.fileno(), entry.mode)
            if self.as_root:
                os.fchown(out.fileno(), *_ids(entry))
            os.utime(out.fileno(), (entry.mtime, entry.mtime))
        if digest.hexdigest() != entry.sha256:
            raise RestoreRefused(f"{entry.path} changed since verification (sha256 differs)")

    def _own(self, target: Path, entry: Entry, follow: bool) -> None:
        if self.as_root:
            os.chown(target, *_ids(entry), follow_symlinks=follow)

    def finish_directories(self) -> None:
        """Modes, owners and times of directories, deepest first (after their contents)."""
        for path, entry in sorted(self.directories, key=lambda d: len(d[0].parts), reverse=True):
            path.chmod(entry.mode)
            self._own(path, entry, follow=False)
            os.utime(path, (entry.mtime, entry.mtime))


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


def restore_backup(
    archive: Path, mode: str, sources: Sources, now: datetime | None = None
) -> RestoreResult:
    """Restore `mode` (config, data or full) from `archive`; see the module docstring."""
    if mode not in MODES:
        raise OpsError(f"--mode must be one of {', '.join(MODES)}")
    report = verify_archive(archive)
    if not report.ok or report.manifest is None:
        problems = "; ".join(report.problems()[:5])
        raise RestoreRefused(f"refusing to restore {archive.name}: it does not verify: {problems}")
    manifest = report.manifest
    known = latest_schema_version()
    if manifest.schema_version > known:
        raise RestoreRefused(
            f"refusing to restore {archive.name}: its state schema {manifest.schema_version} is "
            f"newer than this runtime understands ({known}); upgrade mcp-mesh-sdk first"
        )
    destinations = _destinations(manifest, sources)
    chosen = [root for root in MODES[mode] if root in destinations]
    if not chosen:
        raise RestoreRefused(f"{archive.name} holds nothing for --mode {mode}")

    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"
    targets: list[Target] = []
    bases: dict[str, tuple[Path, Path]] = {}
    for root in chosen:
        path = destinations[root]
        outer = next((o for o in chosen if o != root and destinations[o] in path.parents), None)
        if outer is None:
            staging = path.with_name(f".{path.name}.restore-{stamp}")
            rollback = path.with_name(f"{path.name}.pre-restore-{stamp}")
            targets.append(Target(root, path, staging, rollback))
    for root in chosen:
        path = destinations[root]
        for target in targets:
            if target.path == path:
                bases[root] = (target.staging, target.staging)
            elif target.path in path.parents:
                bases[root] = (target.staging / path.relative_to(target.path), target.staging)

    result = RestoreResult(archive, mode, manifest, targets)
    result.warnings += _leftovers(targets)
    extractor = _Extractor(bases, as_root=os.geteuid() == 0)
    try:
        for target in targets:
            target.path.parent.mkdir(parents=True, exist_ok=True)
        _extract_all(archive, manifest, extractor, chosen, destinations)
        extractor.finish_directories()
        result.members, result.bytes = extractor.members, extractor.bytes
        _swap_all(targets)
    except BaseException as exc:
        if isinstance(exc, UndoFailed):
            raise
        for target in targets:
            _remove(target.staging)
        if isinstance(exc, (OSError, *DAMAGE)):
            raise OpsError(f"restore failed, previous state kept: {exc}") from exc
        raise
    result.warnings += _carry_over(targets, sources, chosen, destinations)
    for target in targets:
        _prune_rollbacks(target)
    return result


def _extract_all(
    archive: Path,
    manifest: Manifest,
    extractor: _Extractor,
    chosen: list[str],
    destinations: dict[str, Path],
) -> None:
    expected = {entry.path: entry for entry in manifest.entries}
    with ArchiveReader(archive) as reader:
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
    """Move back what lives inside a swapped target but was not restored (the backup dir...)."""
    keep = [sources.backup_dir] + [p for r, p in destinations.items() if r not in chosen]
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

"""Read an archive sequentially: the manifest, then each member with its data, in one pass.

An encrypted archive (`encryption.py`) is decrypted as it is read, and its manifest must carry
the identity's HMAC; a legacy one (plain tar.gz) is read as it is, `encrypted` False. The
archive file's bytes are hashed as they are read, so one pass also yields its sha256. Any
damage (bad gzip CRC, truncation, a broken tar header) becomes `CorruptArchive`; a failed
authentication, `NotAuthentic`.
"""

from __future__ import annotations

import gzip
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from mcp_mesh_sdk.backup.encryption import (
    AGE_MAGIC,
    MAC_NAME,
    BackupKey,
    DecryptingSource,
    IdentityNeeded,
    check_manifest_mac,
)
from mcp_mesh_sdk.backup.gzstream import INFLATE_ERRORS, PipelinedGzipReader
from mcp_mesh_sdk.backup.manifest import MANIFEST_NAME, Manifest
from mcp_mesh_sdk.backup.tarread import TarReader
from mcp_mesh_sdk.errors import OpsError

READ_SIZE = 1 << 20
MAX_MANIFEST = 512 << 20
DAMAGE: tuple[type[Exception], ...] = (
    tarfile.TarError,
    *INFLATE_ERRORS,
    EOFError,
    gzip.BadGzipFile,
    UnicodeDecodeError,
)


class CorruptArchive(OpsError):
    exit_code = 1


class ArchiveReader:
    """`with ArchiveReader(path, key) as archive:` then `manifest`, `members()`, `finish()`.

    `key` opens an encrypted archive and checks its manifest's HMAC; without one, only a
    legacy archive can be read.
    """

    def __init__(self, path: Path, key: BackupKey | None, bufsize: int = READ_SIZE) -> None:
        self.path = path
        self._pending: tarfile.TarInfo | None = None
        try:
            self._file = path.open("rb", buffering=0)
        except OSError as exc:
            raise OpsError(f"cannot open {path}: {exc.strerror or exc}") from exc
        self.encrypted = self._file.read(len(AGE_MAGIC)) == AGE_MAGIC
        self._file.seek(0)
        self._decrypted: DecryptingSource | None = None
        source: Any = self._file
        if self.encrypted:
            if key is None:
                self._file.close()
                raise IdentityNeeded(
                    f"{path.name} is encrypted and there is no backup identity to open it "
                    "(--identity-file; default <config dir>/backup.key)"
                )
            self._decrypted = source = DecryptingSource(self._file, key, path.name)
        self._inflated = PipelinedGzipReader(source, min(bufsize, READ_SIZE))
        self._tar = TarReader(self._inflated)
        self._key = key
        try:
            self.manifest = self._read_manifest()
        except DAMAGE as exc:
            self.close()
            raise CorruptArchive(f"{path} is corrupt or truncated: {exc}") from exc
        except OpsError:
            self.close()
            raise

    def _read_manifest(self) -> Manifest:
        first = self._tar.next()
        if first is None or first.name != MANIFEST_NAME or not first.isfile():
            raise CorruptArchive(f"{self.path} does not start with {MANIFEST_NAME}")
        if first.size > MAX_MANIFEST:
            raise CorruptArchive(f"{self.path}: manifest of {first.size} bytes is implausible")
        raw = self._tar.read()
        mac = self._mac_member()
        if self.encrypted:  # a legacy archive has nothing to check it with
            assert self._key is not None
            check_manifest_mac(self._key, raw, mac, self.path.name)
        return Manifest.from_bytes(raw)

    def _mac_member(self) -> bytes | None:
        """The `MANIFEST.hmac` member right after the manifest (None when absent)."""
        following = self._tar.next()
        if following is not None and following.name == MAC_NAME and following.isfile():
            return self._tar.read(4096)
        self._pending = following
        return None

    def members(self) -> Iterator[tuple[tarfile.TarInfo, TarReader | None]]:
        """Every member after the manifest, with a stream of its data (files only).

        The stream is valid until the next member is asked for.
        """
        try:
            pending, self._pending = self._pending, None
            if pending is not None:
                yield pending, self._tar if pending.isfile() else None
            while (info := self._tar.next()) is not None:
                yield info, self._tar if info.isfile() else None
        except DAMAGE as exc:
            raise CorruptArchive(f"{self.path} is corrupt or truncated: {exc}") from exc

    def finish(self) -> tuple[str, int]:
        """Read to the end (checking every gzip CRC); the archive's (sha256, size)."""
        buffer = bytearray(READ_SIZE)
        try:
            while self._inflated.readinto(buffer):
                pass
        except DAMAGE as exc:
            raise CorruptArchive(f"{self.path} is corrupt or truncated: {exc}") from exc
        if self._decrypted is not None:
            return self._decrypted.result()
        return self._inflated.digest.hexdigest(), self._inflated.size

    def close(self) -> None:
        self._inflated.close()
        if self._decrypted is not None:
            self._decrypted.close()
        self._file.close()

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_manifest(path: Path, key: BackupKey | None) -> Manifest:
    """Only the manifest (the first member; its HMAC checked): cheap whatever the size."""
    with ArchiveReader(path, key, bufsize=tarfile.RECORDSIZE) as archive:
        return archive.manifest

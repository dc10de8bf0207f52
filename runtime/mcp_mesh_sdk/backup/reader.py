"""Read an archive sequentially: the manifest, then each member with its data, in one pass.

The raw bytes are hashed as they are read, so one pass also yields the archive's sha256.
Any damage (bad gzip CRC, truncation, a broken tar header) becomes `CorruptArchive`.
"""

from __future__ import annotations

import gzip
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from mcp_mesh_sdk.backup.gzstream import PipelinedGzipReader
from mcp_mesh_sdk.backup.manifest import MANIFEST_NAME, Manifest
from mcp_mesh_sdk.backup.tarread import TarReader
from mcp_mesh_sdk.errors import OpsError

READ_SIZE = 1 << 20
MAX_MANIFEST = 512 << 20
DAMAGE = (tarfile.TarError, zlib.error, EOFError, gzip.BadGzipFile, UnicodeDecodeError)


class CorruptArchive(OpsError):
    exit_code = 1


class ArchiveReader:
    """`with ArchiveReader(path) as archive:` then `manifest`, `members()`, `finish()`."""

    def __init__(self, path: Path, bufsize: int = READ_SIZE) -> None:
        self.path = path
        try:
            self._file = path.open("rb", buffering=0)
        except OSError as exc:
            raise OpsError(f"cannot open {path}: {exc.strerror or exc}") from exc
        self._inflated = PipelinedGzipReader(self._file, min(bufsize, READ_SIZE))
        self._tar = TarReader(self._inflated)
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
        return Manifest.from_bytes(self._tar.read())

    def members(self) -> Iterator[tuple[tarfile.TarInfo, TarReader | None]]:
        """Every member after the manifest, with a stream of its data (files only).

        The stream is valid until the next member is asked for.
        """
        try:
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
        return self._inflated.digest.hexdigest(), self._inflated.size

    def close(self) -> None:
        self._inflated.close()
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


def read_manifest(path: Path) -> Manifest:
    """Only the manifest (the first member): cheap whatever the archive's size."""
    with ArchiveReader(path, bufsize=tarfile.RECORDSIZE) as archive:
        return archive.manifest

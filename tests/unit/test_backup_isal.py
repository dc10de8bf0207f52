"""Backups deflated by ISA-L (python-isal) stay plain gzip: `tar xzf` opens them, the previous
release's verify (zlib) accepts them, and archives that zlib wrote verify and restore.

The previous release read archives exactly as `backup verify` does now when `import isal`
fails: its PipelinedGzipReader inflated with `zlib.decompressobj`, the only part of the read
path this change touches. So "old verify" below is the CLI run in a process where isal cannot
be imported; stdlib `gzip` + `tarfile` read the archives as an independent second reader.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest
from test_backup_helpers import Host, decrypt, make_host, snapshot

from mcp_mesh_sdk.backup import gzstream
from mcp_mesh_sdk.backup.create import create_backup
from mcp_mesh_sdk.backup.restore import restore_backup
from mcp_mesh_sdk.backup.verify import verify_archive

# `mcp-mesh-sdk` in a process where isal does not import (a host without its wheel).
WITHOUT_ISAL = (
    "import sys; sys.modules['isal'] = None; "
    "from mcp_mesh_sdk.cli import main; sys.exit(main(sys.argv[1:]))"
)


def text(size: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    words = ["agent", "registry", "heartbeat", "timeout", "latency", "status", "mesh", "ok"]
    lines = (f'{{"n": {rng.randrange(10**6)}, "msg": "{" ".join(rng.choices(words, k=9))}"}}\n'
             for _ in range(size // 40))  # fmt: skip
    return "".join(lines).encode()[:size]


def with_large_files(host: Host) -> dict[str, bytes]:
    """Files that make several chunks: compressible text over two chunks, random bytes."""
    files = {"logs/agent.log": text(2 * gzstream.CHUNK + 12345), "blob.bin": os.urandom(1 << 20)}
    for name, data in files.items():
        (host.data / name).parent.mkdir(parents=True, exist_ok=True)
        (host.data / name).write_bytes(data)
    return files


def cli_without_isal(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_ISAL, "backup", *args, "--json",
         "--env-file", str(host.env_file)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_isal_is_what_deflates_by_default() -> None:
    """The runtime dependency is installed and loads: level 1 (the default) is ISA-L's."""
    assert gzstream.engine(1) == "isal"
    assert gzstream.engine(6) == "zlib"  # a ratio ISA-L does not reach
    assert gzstream.engine(0) == "stored"


def test_isal_keeps_zlib_level_1s_ratio() -> None:
    chunk = text(gzstream.CHUNK)
    assert len(gzstream.compress_chunk(chunk, 1)) <= 1.03 * len(zlib.compress(chunk, 1, 31))


def test_without_isal_zlib_writes_the_same_bytes_as_before(monkeypatch) -> None:
    monkeypatch.setattr(gzstream, "_isal", None)
    chunk = text(gzstream.CHUNK // 2)
    assert gzstream.engine(1) == "zlib"
    assert gzstream.compress_chunk(chunk, 1) == zlib.compress(chunk, 1, 31)


def test_a_new_archive_opens_with_tar_xzf_and_verifies(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    files = with_large_files(host)
    result = create_backup(host.sources())
    assert result.compression["engine"] == "isal"
    plain = tmp_path / "plain.tar.gz"
    plain.write_bytes(decrypt(result.path, host.key()))
    out = tmp_path / "untarred"
    out.mkdir()
    untar = subprocess.run(["tar", "xzf", str(plain), "-C", str(out)],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert untar.returncode == 0, untar.stderr
    for name, data in files.items():
        assert (out / "data" / name).read_bytes() == data
    assert (out / "data" / "docs" / "a.txt").read_bytes() == (host.data / "docs/a.txt").read_bytes()
    assert json.loads((out / "MANIFEST.json").read_bytes())["members"]
    report = verify_archive(result.path, host.key())
    assert report.ok and report.encrypted, report.problems()


def test_the_previous_releases_verify_accepts_a_new_archive(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    files = with_large_files(host)
    result = create_backup(host.sources())
    assert result.compression["engine"] == "isal"
    old = cli_without_isal(host, "verify", str(result.path))
    report = json.loads(old.stdout)
    assert old.returncode == 0 and report["ok"] and report["authenticated"], old.stdout
    assert report["members_checked"] == len(result.manifest.entries)
    # and the standard library's reader, independent of ours
    with tarfile.open(fileobj=io.BytesIO(decrypt(result.path, host.key())), mode="r:gz") as tar:
        names = tar.getnames()
        assert names[:2] == ["MANIFEST.json", "MANIFEST.hmac"]
        for name, data in files.items():
            member = tar.extractfile(f"data/{name}")
            assert member is not None and member.read() == data


def test_an_archive_zlib_wrote_verifies_and_restores_with_isal(tmp_path: Path) -> None:
    """A backup made by a host without isal (or by the previous release): the new code reads
    it with ISA-L's inflater."""
    host = make_host(tmp_path)
    with_large_files(host)
    made = cli_without_isal(host, "create")
    assert made.returncode == 0, made.stderr
    document = json.loads(made.stdout)
    assert document["compression"]["engine"] == "zlib"
    archive = Path(document["path"])
    assert gzstream.engine(1) == "isal"  # this process reads with ISA-L
    report = verify_archive(archive, host.key())
    assert report.ok and report.encrypted, report.problems()
    before = snapshot(host.data)
    (host.data / "logs" / "agent.log").write_bytes(b"overwritten\n")
    (host.data / "docs" / "a.txt").unlink()
    restore_backup(archive, "data", host.sources(), key=host.key())
    assert snapshot(host.data) == before


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_isal_reading_a_damaged_archive_reports_it_corrupt(tmp_path: Path, damage: str) -> None:
    """ISA-L's inflate errors are damage like zlib's: a report, never a crash."""
    host = make_host(tmp_path)
    with_large_files(host)
    result = create_backup(host.sources())
    plain = bytearray(decrypt(result.path, host.key()))
    if damage == "flip":
        plain[len(plain) * 2 // 3] ^= 0x55
    else:
        del plain[-(64 << 10) :]
    legacy = host.backups / "mcp-mesh-legacy.tar.gz"  # unencrypted: the damage reaches gunzip
    legacy.write_bytes(bytes(plain))
    report = verify_archive(legacy, None)
    assert not report.ok and report.corrupt, report.to_json()

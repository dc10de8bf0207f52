"""A fake host layout and hand-made archives for the backup tests."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pyrage

from mcp_mesh_sdk.backup.encryption import BackupKey, load_key, manifest_mac
from mcp_mesh_sdk.backup.sources import Sources, resolve_sources


@dataclass
class Host:
    root: Path
    env_file: Path
    state: Path
    data: Path
    backups: Path
    identity_file: Path

    def sources(self) -> Sources:
        return resolve_sources(env_file=self.env_file)

    def key(self) -> BackupKey:
        return load_key(self.identity_file)


TOKEN = "abcdefghijklmnopqrstuvwxyz"  # MCP_MESH_TOKEN in the fake env file


def write_identity(path: Path) -> Path:
    """A fresh age identity, as age-keygen writes it, root-only like the role deploys it."""
    identity = pyrage.x25519.Identity.generate()
    path.touch(mode=0o600)
    path.write_text(f"# public key: {identity.to_public()}\n{identity}\n")
    return path


def make_host(tmp_path: Path) -> Host:
    etc, state, backups = tmp_path / "etc", tmp_path / "state", tmp_path / "backups"
    data = state / "data"
    for directory in (etc, data / "docs"):
        directory.mkdir(parents=True)
    env_file = etc / "agent.env"
    env_file.write_text(
        f"MCP_MESH_STATE_DIR={state}\nBASE_DIRECTORY={data}\n"
        f"MCP_MESH_TOKEN={TOKEN}\nMCP_MESH_BACKUP_DIR={backups}\n"
    )
    identity_file = write_identity(etc / "backup.key")
    (state / "incidents.jsonl").write_text("")
    (data / "docs" / "a.txt").write_text("alpha\n" * 100)
    (data / "docs" / "b.json").write_text('{"b": 1}\n')
    (data / "secret.yaml").write_text("x: 1\n")
    (data / "secret.yaml").chmod(0o600)
    (data / "link-to-a").symlink_to("docs/a.txt")
    return Host(tmp_path, env_file, state, data, backups, identity_file)


def snapshot(directory: Path, ignore: tuple[str, ...] = ("backups", "incoming")) -> dict:
    """Path -> content (files), link target (links) or 'dir', with modes: what a user sees.

    Backup directories are ignored: verification caches its outcome there.
    """
    found: dict[str, object] = {}
    for path in sorted(directory.rglob("*")):
        key = str(path.relative_to(directory))
        if key.split("/", 1)[0] in ignore:
            continue
        if path.is_symlink():
            found[key] = ("link", str(path.readlink()))
        elif path.is_dir():
            found[key] = ("dir", path.stat().st_mode & 0o7777)
        else:
            found[key] = (path.read_bytes(), path.stat().st_mode & 0o7777)
    return found


def craft_archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], schema: int = 0,
                  roots: dict[str, str] | None = None, key: BackupKey | None = None,
                  ) -> Path:  # fmt: skip
    """A well-formed archive (manifest first, hashes right) holding exactly `members`: with
    `key`, authentic (its manifest's HMAC, encrypted), else a legacy plain tar.gz."""
    entries = []
    for info, data in members:
        kind = "dir" if info.isdir() else "symlink" if info.issym() else "file"
        entry = {"path": info.name, "type": kind, "mode": info.mode, "uid": 0, "gid": 0,
                 "owner": "root", "group": "root", "mtime": 0.0, "size": len(data)}  # fmt: skip
        if kind == "file":
            entry["sha256"] = hashlib.sha256(data).hexdigest()
        if kind == "symlink":
            entry["target"] = info.linkname
            entry["size"] = 0
        entries.append(entry)
    manifest = {
        "format": 1, "created_at": "2026-01-01T00:00:00.000Z", "host": "h",
        "agent_version": "1.0.0", "schema_version": schema,
        "roots": roots or {"data": "/nonexistent"}, "warnings": [], "members": entries,
    }  # fmt: skip
    body = json.dumps(manifest).encode()
    front = [member("MANIFEST.json", body)]
    if key is not None:
        front.append(member("MANIFEST.hmac", manifest_mac(key, body)))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in [*front, *members]:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    if key is None:
        path.write_bytes(buffer.getvalue())
    else:
        encrypt(path, buffer.getvalue(), key)
    return path


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "",
           mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:  # fmt: skip
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info, data


def decrypt(path: Path, key: BackupKey) -> bytes:
    """The plaintext tar.gz of an encrypted archive."""
    return bytes(pyrage.decrypt(path.read_bytes(), [key.identity]))


def encrypt(path: Path, plaintext: bytes, key: BackupKey) -> None:
    """Write `plaintext` encrypted to the key's recipient: what anyone holding the public half
    (not the identity) can do."""
    path.write_bytes(pyrage.encrypt(plaintext, [key.recipient]))

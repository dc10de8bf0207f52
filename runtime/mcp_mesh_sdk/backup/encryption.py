"""Backups at rest: age encryption and the manifest's HMAC, both from the host's age identity.

An archive is `<name>.tar.gz.age`: its tar.gz stream encrypted with age (X25519) to the
recipient of the backup identity, so `age -d -i KEY ARCHIVE | tar -tz` opens it by hand. age
authenticates the stream, but anyone who has the recipient (the public half) could encrypt a
forged one; so the archive also carries `MANIFEST.hmac`, an HMAC-SHA256 of the manifest keyed
from the identity itself (HKDF-SHA256). Only a holder of the identity makes an archive that
verifies. Archives written before encryption (a plain `.tar.gz`) are told apart by their first
bytes; they stay readable and are reported as unencrypted (legacy).

The identity file is what `age-keygen` writes (comments and one `AGE-SECRET-KEY-1...` line),
owned by root, mode 0600. Its content is never printed, not even in an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyrage

from mcp_mesh_sdk.errors import OpsError

AGE_MAGIC = b"age-encryption.org/v1\n"
IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
MAC_NAME = "MANIFEST.hmac"
MAC_ALGORITHM = "HMAC-SHA256"
_HKDF_SALT = b"mcp-mesh backup"
_HKDF_INFO = b"manifest HMAC-SHA256 v1"
_MAX_IDENTITY_FILE = 64 << 10


class BackupKeyError(OpsError):
    """The identity file is missing, unsafe or not an age identity."""

    exit_code = 2


class IdentityNeeded(OpsError):
    """An encrypted archive, and no identity to open it."""

    exit_code = 2


class NotAuthentic(OpsError):
    """age refused the archive, or its manifest's HMAC does not match."""

    exit_code = 1

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name} is not authentic: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class BackupKey:
    """The host's age identity, its recipient and the manifest's HMAC key (never printed)."""

    path: Path
    identity: Any = field(repr=False)
    recipient: Any = field(repr=False)
    mac_key: bytes = field(repr=False)


def _hkdf_sha256(secret: bytes, salt: bytes, info: bytes) -> bytes:
    """32 bytes of HKDF-SHA256 (RFC 5869: extract, then the first block of expand)."""
    pseudo_random = hmac.new(salt, secret, hashlib.sha256).digest()
    return hmac.new(pseudo_random, info + b"\x01", hashlib.sha256).digest()


def _read_identity_file(path: Path) -> str:
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BackupKeyError(
            f"no backup identity at {path}: backups are encrypted to it (make one with "
            "age-keygen and deploy it as mesh_agent_backup_identity, or give --identity-file)"
        ) from None
    except OSError as exc:
        raise BackupKeyError(f"cannot read the backup identity {path}: {exc.strerror}") from None
    with os.fdopen(handle, "rb") as source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise BackupKeyError(f"the backup identity {path} is not a regular file")
        if info.st_mode & 0o077:
            raise BackupKeyError(
                f"the backup identity {path} is open to others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}): make it 0600, readable by its owner only"
            )
        raw = source.read(_MAX_IDENTITY_FILE + 1)
    if len(raw) > _MAX_IDENTITY_FILE:
        raise BackupKeyError(f"the backup identity {path} is too large to be an age identity")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise BackupKeyError(f"the backup identity {path} is not an age identity file") from None


def load_key(path: Path) -> BackupKey:
    """The identity in `path` (as `age-keygen` writes it); a clear error, never its content."""
    lines = [line.strip() for line in _read_identity_file(path).splitlines()]
    found = [line for line in lines if line.upper().startswith(IDENTITY_PREFIX)]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise BackupKeyError(
            f"the backup identity {path} holds {what} age identities (one line "
            f"{IDENTITY_PREFIX}..., as age-keygen writes it); one is needed"
        )
    secret = found[0].upper()
    try:
        identity = pyrage.x25519.Identity.from_str(secret)
    except Exception:  # pyrage's message could quote the value: never shown
        raise BackupKeyError(
            f"the backup identity {path} is not a valid age X25519 identity"
        ) from None
    mac_key = _hkdf_sha256(secret.encode("ascii"), _HKDF_SALT, _HKDF_INFO)
    return BackupKey(path, identity, identity.to_public(), mac_key)


def load_key_if_present(path: Path) -> BackupKey | None:
    """The identity in `path`, or None when there is no such file (legacy archives can still
    be read); an identity file that is there but unsafe or invalid is an error."""
    if not path.exists() and not path.is_symlink():
        return None
    return load_key(path)


def manifest_mac(key: BackupKey, manifest: bytes) -> bytes:
    """The `MANIFEST.hmac` member's content for these manifest bytes."""
    digest = hmac.new(key.mac_key, manifest, hashlib.sha256).hexdigest()
    document = {"algorithm": MAC_ALGORITHM, "key": "HKDF-SHA256 of the age identity"}
    return (json.dumps({**document, "mac": digest}, sort_keys=True) + "\n").encode()


def check_manifest_mac(key: BackupKey, manifest: bytes, member: bytes | None, name: str) -> None:
    """Raise NotAuthentic unless `member` is the HMAC of `manifest` under this identity."""
    if member is None:
        raise NotAuthentic(name, f"it carries no {MAC_NAME}")
    try:
        claimed = json.loads(member)["mac"]
    except (ValueError, KeyError, TypeError):
        raise NotAuthentic(name, f"its {MAC_NAME} is damaged") from None
    expected = json.loads(manifest_mac(key, manifest))["mac"]
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed, expected):
        raise NotAuthentic(
            name,
            "its manifest's HMAC does not match this host's backup identity (forged, changed, "
            "or made with another identity)",
        )


def is_encrypted(path: Path) -> bool:
    """Whether the file starts as an age file does (else: a legacy, unencrypted tar.gz)."""
    try:
        with path.open("rb") as source:
            return source.read(len(AGE_MAGIC)) == AGE_MAGIC
    except OSError as exc:
        raise OpsError(f"cannot open {path}: {exc.strerror or exc}") from exc


class _HashingWriter:
    """A write target for pyrage: every byte written to `handle` and hashed."""

    def __init__(self, handle: int) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.handle, view) :]
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def encrypt_to(plain: BinaryIO, handle: int, key: BackupKey) -> tuple[str, int]:
    """Encrypt `plain` (read from its current position) into the open file `handle`, streaming;
    the (sha256, size) of what was written."""
    out = _HashingWriter(handle)
    try:
        pyrage.encrypt_io(plain, out, [key.recipient])
    except (pyrage.EncryptError, OSError) as exc:
        raise OpsError(f"cannot encrypt the backup: {exc}") from exc
    return out.digest.hexdigest(), out.size


# The decrypting process: its own interpreter, so age's work never waits for this one's GIL.
# It reads the identity from standard input and the archive from the descriptor its argument
# names, writes the plaintext to standard output and, last, one JSON line to standard error:
# the archive's sha256 and size, or why age refused it.
_DECRYPTER = """
import hashlib, json, os, sys
import pyrage
class Hashed:
    def __init__(self, source):
        self.source, self.digest, self.size = source, hashlib.sha256(), 0
    def read(self, size=-1):
        data = self.source.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data
identity = pyrage.x25519.Identity.from_str(sys.stdin.readline().strip())
source = Hashed(os.fdopen(int(sys.argv[1]), "rb", buffering=1 << 20))
try:
    with os.fdopen(1, "wb", buffering=0) as out:
        pyrage.decrypt_io(source, out, [identity])
except BrokenPipeError:
    sys.exit(0)
except Exception as exc:
    sys.stderr.write(json.dumps({"error": str(exc) or type(exc).__name__}) + "\\n")
    sys.exit(1)
sys.stderr.write(json.dumps({"sha256": source.digest.hexdigest(), "size": source.size}) + "\\n")
"""


class DecryptingSource:
    """The plaintext of an age file as a raw stream, decrypted by a child process.

    `read()` at the end raises NotAuthentic when age refused the file (a wrong identity, a
    changed or truncated archive): age checks every 64 KiB chunk before it hands it over, so
    no byte it did not authenticate comes out. `result()` gives the sha256 and size of the
    encrypted file. Memory stays constant: the pipe holds what is in flight.
    """

    def __init__(self, source: BinaryIO, key: BackupKey, name: str) -> None:
        self.name = name
        self._outcome: dict[str, Any] | None = None
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _DECRYPTER, str(source.fileno())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(source.fileno(),),
                bufsize=0,
            )
        except OSError as exc:
            raise OpsError(f"cannot start the decryption of {name}: {exc.strerror}") from exc
        assert self._process.stdin is not None and self._process.stdout is not None
        self._plain = self._process.stdout
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.write(f"{key.identity}\n".encode())
        self._process.stdin.close()

    def _finish(self) -> dict[str, Any]:
        if self._outcome is None:
            assert self._process.stderr is not None
            report = self._process.stderr.read()  # one line, at the child's end
            self._process.wait()
            try:
                outcome = json.loads(report.decode(errors="replace").strip().splitlines()[-1])
            except (ValueError, IndexError):
                outcome = {"error": f"the decrypter ended with status {self._process.returncode}"}
            self._outcome = outcome if isinstance(outcome, dict) else {"error": "no outcome"}
        return self._outcome

    def read(self, size: int = -1) -> bytes:
        data = self._plain.read(size)
        if not data:
            outcome = self._finish()
            if "error" in outcome:
                raise NotAuthentic(
                    self.name,
                    f"age refused it ({outcome['error']}): a wrong backup identity, or the "
                    "archive was changed or cut short",
                )
        return data or b""

    def result(self) -> tuple[str, int]:
        """The encrypted file's (sha256, size), once everything was read."""
        outcome = self._finish()
        return str(outcome["sha256"]), int(outcome["size"])

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()  # the reader stopped early (only the manifest was wanted)
        self._plain.close()
        self._process.wait()
        if self._process.stderr is not None:
            self._process.stderr.close()

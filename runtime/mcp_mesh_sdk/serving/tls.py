"""TLS for the services' listeners and for the clients that call them.

Settings: the agent reads `MCP_MESH_TLS_*`, the registry `MCP_MESH_REGISTRY_TLS_*`:

- `CERT_FILE`: one PEM with the certificate chain (server certificate first) and its private
  key, as HAProxy's crt files: a rotation is one atomic rename, and the pair is validated as a
  whole (`check-config --tls-cert`). With it set the listener speaks TLS only.
- `KEY_FILE`: the key in a file of its own instead (optional).
- `CA_FILE`: the CA bundle clients verify servers with (the agent: the registry when
  MESH_REGISTRY_URL is https://; the ops commands: the local service). Unset: the system's CAs.

`CertificateReloader` holds the listener's context. At most once a second it looks at the
files' (mtime, inode, size); when they changed it loads them into the live context, so new
connections get the new certificate while open ones keep theirs, and a rotation needs no
restart. A file that does not load is logged once per change and the old certificate stays.

`client_context(url, ca_file)` is the one way clients here make their context.
(No uvicorn here: ops commands load configs.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mcp_mesh_sdk.envreader import EnvReader
from mcp_mesh_sdk.errors import OpsError

logger = logging.getLogger("mcp_mesh_sdk.serving.tls")

RELOAD_CHECK_INTERVAL = 1.0  # seconds between two looks at the certificate files
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class TlsError(OpsError):
    """A certificate or CA file cannot be used; the message names the file, never the key."""


@dataclass(frozen=True)
class TlsSettings:
    cert_file: Path | None = None  # <prefix>TLS_CERT_FILE: chain + key; None: plain HTTP
    key_file: Path | None = None  # <prefix>TLS_KEY_FILE: the key apart (optional)
    ca_file: Path | None = None  # <prefix>TLS_CA_FILE: CAs servers are verified with

    @property
    def enabled(self) -> bool:
        """The listener speaks TLS."""
        return self.cert_file is not None

    def files(self) -> tuple[Path, ...]:
        return tuple(path for path in (self.cert_file, self.key_file) if path is not None)

    def as_env(self, prefix: str) -> dict[str, str | None]:
        """The settings under their variable names (`prefix` + TLS_CERT_FILE, ...)."""
        return {
            f"{prefix}TLS_CERT_FILE": _shown(self.cert_file),
            f"{prefix}TLS_KEY_FILE": _shown(self.key_file),
            f"{prefix}TLS_CA_FILE": _shown(self.ca_file),
        }


def _shown(path: Path | None) -> str | None:
    return None if path is None else str(path)


def read_tls_settings(read: EnvReader, prefix: str) -> TlsSettings:
    """`prefix`TLS_CERT_FILE, `prefix`TLS_KEY_FILE and `prefix`TLS_CA_FILE (absolute paths);
    a key file without a certificate file is a problem in `read`."""
    settings = TlsSettings(
        cert_file=read.absolute_path(f"{prefix}TLS_CERT_FILE", None),
        key_file=read.absolute_path(f"{prefix}TLS_KEY_FILE", None),
        ca_file=read.absolute_path(f"{prefix}TLS_CA_FILE", None),
    )
    if settings.key_file is not None and settings.cert_file is None:
        read.problem(
            f"{prefix}TLS_KEY_FILE",
            f"set without {prefix}TLS_CERT_FILE: the key needs its certificate",
        )
    return settings


# -- the listener's context --------------------------------------------------------------------


def new_server_context() -> ssl.SSLContext:
    """A server context without a certificate yet: TLS 1.2 or later, HTTP/1.1."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.set_alpn_protocols(["http/1.1"])
    return context


Identity = tuple[tuple[int, int, int] | None, ...]


def _identity(paths: tuple[Path, ...]) -> Identity:
    """(mtime, inode, size) of each file, None for one that cannot be looked at."""
    found: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            found.append(None)
        else:
            found.append((info.st_mtime_ns, info.st_ino, info.st_size))
    return tuple(found)


@contextlib.contextmanager
def _as_file(data: bytes | None) -> Iterator[str | None]:
    """A path holding `data` that no other process can read or change: what OpenSSL loads is
    exactly the bytes read once (a file renamed meanwhile cannot mix in)."""
    if data is None:
        yield None
        return
    if hasattr(os, "memfd_create"):
        descriptor = os.memfd_create("mcp-mesh-tls", os.MFD_CLOEXEC)
        try:
            os.write(descriptor, data)
            yield f"/proc/self/fd/{descriptor}"
        finally:
            os.close(descriptor)
        return
    with tempfile.TemporaryDirectory(prefix="mcp-mesh-tls-") as folder:  # 0700
        path = Path(folder) / "pem"
        path.write_bytes(data)
        yield str(path)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read {path}: {exc.strerror or exc}") from None


def _load(context: ssl.SSLContext, settings: TlsSettings, cert: bytes, key: bytes | None) -> None:
    """Load the certificate and key bytes into `context`; TlsError with a clear reason."""
    with _as_file(cert) as cert_path, _as_file(key) as key_path:
        assert cert_path is not None  # cert is bytes
        try:
            context.load_cert_chain(cert_path, key_path)
        except (ssl.SSLError, ValueError) as exc:
            raise TlsError(_why_unusable(settings, cert, key, exc)) from None


def _why_unusable(settings: TlsSettings, cert: bytes, key: bytes | None, exc: Exception) -> str:
    from mcp_mesh_sdk.certificates import CertificateError, parse_bundle

    try:
        parse_bundle(cert, str(settings.cert_file), key)
    except CertificateError as problem:
        return str(problem)
    return f"{settings.cert_file}: OpenSSL cannot load it ({exc})"


class CertificateReloader:
    """The listener's SSL context, reloaded from the files when they change."""

    def __init__(self, settings: TlsSettings, clock: Callable[[], float] = time.monotonic) -> None:
        """TlsError when the files cannot serve (the service does not start)."""
        if settings.cert_file is None:
            raise ValueError("TLS is not enabled")
        self.settings = settings
        self.clock = clock
        self.context = new_server_context()
        self._files = settings.files()
        self._loaded = _identity(self._files)
        self._load_into(self.context)
        self._refused: Identity | None = None
        self._last_check = clock()
        self.reloads = 0

    def _load_into(self, context: ssl.SSLContext) -> None:
        assert self.settings.cert_file is not None  # checked in __init__
        cert = _read(self.settings.cert_file)
        key = _read(self.settings.key_file) if self.settings.key_file is not None else None
        _load(new_server_context(), self.settings, cert, key)  # a trial: the live one stays
        _load(context, self.settings, cert, key)  # whole when the new files are bad

    def check(self) -> bool:
        """Reload when the files changed (looked at once a second at most); True on reload."""
        now = self.clock()
        if now - self._last_check < RELOAD_CHECK_INTERVAL:
            return False
        self._last_check = now
        identity = _identity(self._files)
        if identity == self._loaded or identity == self._refused:
            return False
        try:
            self._load_into(self.context)
        except TlsError as exc:
            self._refused = identity
            logger.error("new TLS certificate not loaded, still serving the previous one: %s", exc)
            return False
        self._loaded, self._refused = identity, None
        self.reloads += 1
        logger.info("TLS certificate reloaded from %s", self.settings.cert_file)
        return True

    async def watch(self) -> None:
        """`check` every second, until cancelled."""
        while True:
            await asyncio.sleep(RELOAD_CHECK_INTERVAL)
            self.check()


# -- clients ---------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower().removesuffix(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def client_context(
    url: str, ca_file: Path | None, *, relax_loopback: bool = True
) -> ssl.SSLContext | None:
    """How a client verifies `url`: None for http://; for https:// the chain verified against
    `ca_file` (the system's CAs when None), and the host name too, except for a loopback host
    when `relax_loopback` (the certificate names the host as others reach it, not 127.0.0.1).
    TlsError when the CA file cannot be read."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return None
    try:
        context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    except (OSError, ValueError) as exc:
        plain = isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError)
        reason = exc.strerror if plain and isinstance(exc, OSError) else None
        raise TlsError(
            f"CA file {ca_file}: {reason or 'holds no PEM certificate that could be read'}"
        ) from None
    context.minimum_version = MINIMUM_VERSION
    if relax_loopback and is_loopback(parts.hostname or ""):
        context.check_hostname = False  # the chain is still verified (CERT_REQUIRED)
    return context

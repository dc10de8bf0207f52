"""TLS certificate files: is one usable, and how long until it expires.

A service's certificate file is one PEM holding the certificate chain (server certificate
first) and its private key, or the chain alone with the key in a file of its own
(`MCP_MESH_TLS_KEY_FILE`). `check_certificate_file` is what `check-config --tls-cert` runs
before a file replaces the live one: it parses, holds exactly one private key and that key
belongs to the first certificate, the certificate is valid now, and (given a CA file) a TLS
handshake made in memory with OpenSSL, as the agent's clients and HAProxy make it, verifies
the chain against the CA. Every problem is one line that names the file, never the key.

`read_expiry` gives the days left, and `expiry_severity` the severity of a certificate that
expires soon (`diagnose` findings, the agent's incidents): P3 within `EXPIRY_P3_DAYS`, P2
within `EXPIRY_P2_DAYS`, P1 once expired.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from mcp_mesh_sdk.incidents import Incident, Severity, new_incident_id

EXPIRY_P3_DAYS = 14  # a certificate expiring within this many days is a P3 finding
EXPIRY_P2_DAYS = 3  # ... within this many days a P2; an expired one a P1
_KEY_BLOCK = re.compile(
    rb"-----BEGIN ((?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY)-----.*?-----END \1-----", re.DOTALL
)
_HANDSHAKE_ROUNDS = 10


class CertificateError(Exception):
    """A certificate file that cannot serve; the message is one line naming the file."""


@dataclass(frozen=True)
class PemBundle:
    """What a certificate file holds: its certificates (leaf first) and its private key."""

    certificates: tuple[x509.Certificate, ...]
    key: PrivateKeyTypes

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]


def describe(cert: x509.Certificate) -> str:
    """`CN=agent-1` (or the whole subject when it has no common name)."""
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return f"CN={names[0].value!s}" if names else cert.subject.rfc4514_string() or "(no subject)"


def read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def parse_bundle(cert_pem: bytes, origin: str, key_pem: bytes | None = None) -> PemBundle:
    """The certificates and the one private key of `cert_pem` (the key from `key_pem` when
    given); CertificateError naming `origin` when they cannot serve together."""
    try:
        certificates = tuple(x509.load_pem_x509_certificates(cert_pem))
    except ValueError:
        raise CertificateError(f"{origin}: no PEM certificate could be read") from None
    key_source = cert_pem if key_pem is None else key_pem
    blocks = [match for match in _KEY_BLOCK.finditer(key_source)]
    if key_pem is not None and _KEY_BLOCK.search(cert_pem):
        raise CertificateError(f"{origin}: holds a private key while a separate key file is set")
    where = origin if key_pem is None else f"{origin} (key file)"
    if not blocks:
        raise CertificateError(f"{where}: no PEM private key found")
    if len(blocks) > 1:
        raise CertificateError(f"{where}: {len(blocks)} private keys found, exactly one expected")
    if blocks[0].group(1) == b"ENCRYPTED PRIVATE KEY":
        raise CertificateError(f"{where}: the private key is encrypted; give it unencrypted")
    try:
        key = serialization.load_pem_private_key(blocks[0].group(0), password=None)
    except (ValueError, TypeError, NotImplementedError):
        raise CertificateError(f"{where}: the private key does not parse") from None
    bundle = PemBundle(certificates, key)
    _check_key_matches(bundle, origin)
    return bundle


def _public(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes")  # noqa: B009 - every public key type has it
    return bytes(
        public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _check_key_matches(bundle: PemBundle, origin: str) -> None:
    mine = _public(bundle.key.public_key())
    if _public(bundle.leaf.public_key()) == mine:
        return
    for number, cert in enumerate(bundle.certificates[1:], start=2):
        if _public(cert.public_key()) == mine:
            raise CertificateError(
                f"{origin}: the private key belongs to certificate {number} ({describe(cert)}), "
                "not to the first one: put the server certificate first"
            )
    raise CertificateError(
        f"{origin}: the private key does not match the certificate ({describe(bundle.leaf)})"
    )


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def days_left(cert: x509.Certificate, now: datetime | None = None) -> float:
    """Days until `cert` expires (negative once it has)."""
    return (cert.not_valid_after_utc - _now(now)).total_seconds() / 86400


def validity_problem(cert: x509.Certificate, now: datetime | None = None) -> str | None:
    """Why `cert` is not valid at `now` (expired, not yet valid), or None."""
    moment = _now(now)
    if cert.not_valid_after_utc <= moment:
        return f"expired on {_day(cert.not_valid_after_utc)}"
    if cert.not_valid_before_utc > moment:
        return f"not valid before {_day(cert.not_valid_before_utc)}"
    return None


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def check_certificate_file(
    cert_file: Path, *, key_file: Path | None = None, ca_file: Path | None = None
) -> Expiry:
    """Everything that must hold before `cert_file` serves (CertificateError otherwise); its
    expiry when it can."""
    cert_pem = read_file(cert_file, "certificate file")
    key_pem = read_file(key_file, "key file") if key_file is not None else None
    bundle = parse_bundle(cert_pem, str(cert_file), key_pem)
    problem = validity_problem(bundle.leaf)
    if problem is not None:
        raise CertificateError(f"{cert_file}: the certificate ({describe(bundle.leaf)}) {problem}")
    if ca_file is not None:
        verify_against_ca(cert_file, key_file, ca_file)
    return expiry_of(cert_file, bundle.leaf)


def ca_client_context(ca_file: Path) -> ssl.SSLContext:
    """A client context trusting only `ca_file`, host names unchecked; CertificateError when
    the file holds no CA certificate that can be read."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    try:
        client.load_verify_locations(cafile=str(ca_file))
    except OSError as exc:  # ssl.SSLError too
        reason = exc.strerror if exc.strerror and not isinstance(exc, ssl.SSLError) else None
        raise CertificateError(
            f"CA file {ca_file}: " + (reason or "holds no PEM certificate that could be read")
        ) from None
    return client


def verify_against_ca(cert_file: Path, key_file: Path | None, ca_file: Path) -> None:
    """A TLS handshake in memory: a server with the file's chain and key, a client trusting
    only `ca_file` (host names are not checked: the file may serve under any of its names)."""
    client = ca_client_context(ca_file)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        server.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    except (OSError, ValueError) as exc:
        raise CertificateError(f"{cert_file}: OpenSSL cannot load it ({exc})") from None
    try:
        _handshake(server, client)
    except ssl.SSLCertVerificationError as exc:
        raise CertificateError(
            f"{cert_file}: does not verify against the CA {ca_file}: {exc.verify_message}"
        ) from None
    except ssl.SSLError as exc:
        raise CertificateError(f"{cert_file}: TLS handshake failed: {exc.reason}") from None


def _handshake(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    from_server, from_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(to_client, from_client, server_side=False)
    server = server_context.wrap_bio(to_server, from_server, server_side=True)
    finished = {"client": False, "server": False}
    for _ in range(_HANDSHAKE_ROUNDS):
        for name, side, outgoing, incoming in (
            ("client", client, from_client, to_server),
            ("server", server, from_server, to_client),
        ):
            if not finished[name]:
                try:
                    side.do_handshake()
                    finished[name] = True
                except ssl.SSLWantReadError:
                    pass
            incoming.write(outgoing.read())
        if all(finished.values()):
            return
    raise ssl.SSLError("the handshake did not finish")


# -- expiry -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expiry:
    path: Path | str  # a file, or `served by HOST:PORT` (read_served_expiry)
    subject: str
    not_after: datetime
    days_left: float

    @property
    def severity(self) -> Severity | None:
        return expiry_severity(self.days_left)

    @property
    def date(self) -> str:
        return _day(self.not_after)

    def finding(self) -> str | None:
        """One line for `diagnose` (None while the certificate has time left)."""
        severity = self.severity
        if severity is None:
            return None
        if self.days_left <= 0:
            when = f"expired on {self.date}"
        else:
            when = f"expires on {self.date} (in {self.days_left:.1f} days)"
        return f"{severity.value}: certificate {self.path} ({self.subject}) {when}"

    def to_json(self) -> dict[str, object]:
        severity = self.severity
        return {
            "path": str(self.path),
            "subject": self.subject,
            "not_after": self.not_after.isoformat().replace("+00:00", "Z"),
            "days_left": round(self.days_left, 2),
            "severity": severity.value if severity is not None else None,
        }


def expiry_severity(days: float) -> Severity | None:
    """P1 once expired, P2 within EXPIRY_P2_DAYS, P3 within EXPIRY_P3_DAYS, else None."""
    if days <= 0:
        return Severity.P1
    if days <= EXPIRY_P2_DAYS:
        return Severity.P2
    if days <= EXPIRY_P3_DAYS:
        return Severity.P3
    return None


def read_expiry(path: Path, now: datetime | None = None) -> Expiry:
    """The first certificate's expiry in the PEM file `path`; CertificateError if unreadable."""
    data = read_file(path, "certificate file")
    try:
        leaf = x509.load_pem_x509_certificates(data)[0]
    except ValueError:
        raise CertificateError(f"{path}: no PEM certificate could be read") from None
    return expiry_of(path, leaf, now)


def read_served_expiry(endpoint: str, now: datetime | None = None, timeout: float = 5.0) -> Expiry:
    """The expiry of the certificate the TLS endpoint `HOST:PORT` serves (to its host name, as
    SNI), e.g. the load balancer's as its clients see it. It is read, not trusted: an expired or
    foreign certificate is what this is for. CertificateError when none can be read."""
    host, _, port = endpoint.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise CertificateError(f"{endpoint}: not HOST:PORT")
    try:
        pem = ssl.get_server_certificate((host, int(port)), timeout=timeout)
        cert = x509.load_pem_x509_certificate(pem.encode())
    except (OSError, ValueError) as exc:
        raise CertificateError(f"{endpoint}: no certificate could be read ({exc})") from None
    return expiry_of(f"served by {endpoint}", cert, now)


def expiry_of(path: Path | str, cert: x509.Certificate, now: datetime | None = None) -> Expiry:
    return Expiry(path, describe(cert), cert.not_valid_after_utc, days_left(cert, now))


def expiry_incident(expiry: Expiry) -> Incident | None:
    """The incident a certificate near its expiry calls for (None while it has time left).

    The cause carries the severity: a P3 left open does not hide the P2 that follows.
    """
    severity, finding = expiry.severity, expiry.finding()
    if severity is None or finding is None:
        return None
    return Incident(
        id=new_incident_id(),
        severity=severity.value,
        title="Certificate expired" if expiry.days_left <= 0 else "Certificate expires soon",
        description=finding.split(": ", 1)[1],
        cause=f"certificate:{severity.name}:{expiry.path}",
        components=["tls"],
        actions=[
            f"replace {expiry.path} with a renewed certificate (validate it first: "
            f"mcp-mesh-sdk check-config --tls-cert {expiry.path})",
            "the agent and the registry load a replaced file within a second, no restart",
        ],
    )


class CertificateExpiry:
    """The expiry (Unix time) of the first certificate of a PEM file, read again only when the
    file changes (a renewal replaces it)."""

    def __init__(self, cert_file: Path) -> None:
        self.cert_file = cert_file
        self._seen: tuple[int, int] | None = None
        self._expiry: float | None = None

    def read(self) -> float | None:
        """None when the file cannot be read as a certificate."""
        try:
            stat = self.cert_file.stat()
        except OSError:
            self._seen, self._expiry = None, None
            return None
        seen = (stat.st_mtime_ns, stat.st_ino)
        if seen != self._seen:
            self._seen = seen
            try:
                self._expiry = read_expiry(self.cert_file).not_after.timestamp()
            except CertificateError:
                self._expiry = None
        return self._expiry

"""The lab's own certificate authority and a server certificate per host, made at `lab up`.

The lab deploys the mesh with TLS end to end (issue 18), so it needs what an operator would
bring: a CA and a certificate for each host. Both are made fresh for each lab and kept like its
tokens, in the git-ignored inventory (`mesh_common_tls_*`), and the CA also in the lab's state
directory:

    STATE_ROOT/NAME/tls/ca.pem       the CA certificate: `curl --cacert` it (0644)
    STATE_ROOT/NAME/tls/ca-key.pem   its private key, for tests that re-issue a certificate (0600)

Each host certificate names the host as every client reaches it: DNS:<host name>, IP:<its
address>, DNS:localhost, IP:127.0.0.1. Keys are ECDSA P-256 (fast to make, served by HAProxy,
uvicorn and OpenSSL alike). Validity: the CA one year, host certificates 90 days.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lab.errors import LabError

CA_DAYS = 365
HOST_DAYS = 90
CLOCK_SKEW = datetime.timedelta(minutes=5)  # hosts' clocks are this machine's, but be lenient
TLS_DIR = "tls"
CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"


@dataclass(frozen=True)
class Issued:
    """A host's certificate and private key, PEM text each."""

    cert: str
    key: str


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class LabCa:
    """The CA of one lab: its certificate and key (PEM) and what it signs."""

    cert: str
    key: str

    @classmethod
    def create(cls, lab: str, now: datetime.datetime | None = None) -> LabCa:
        start = (now or _now()) - CLOCK_SKEW
        key = _new_key()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MCP Mesh lab"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"MCP Mesh lab '{lab}' CA"),
            ]
        )
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(_cert_pem(cert), _key_pem(key))

    @classmethod
    def load(cls, directory: Path) -> LabCa:
        """The CA `write` saved in a lab's state directory."""
        folder = directory / TLS_DIR
        try:
            return cls((folder / CA_FILE).read_text(), (folder / CA_KEY_FILE).read_text())
        except OSError as exc:
            raise LabError(f"the lab's CA is not in {folder} ({exc.strerror})") from exc

    def issue(
        self,
        host: str,
        address: IPv4Address | str,
        now: datetime.datetime | None = None,
        days: int = HOST_DAYS,
    ) -> Issued:
        """A new key and a server certificate for `host` at `address`, signed by this CA."""
        start = (now or _now()) - CLOCK_SKEW
        ca_cert = x509.load_pem_x509_certificate(self.cert.encode())
        ca_key = serialization.load_pem_private_key(self.key.encode(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise LabError("the lab's CA key is not an ECDSA key")
        key = _new_key()
        names: list[x509.GeneralName] = [
            x509.DNSName(host),
            x509.IPAddress(ip_address(str(address))),
            x509.DNSName("localhost"),
            x509.IPAddress(ip_address("127.0.0.1")),
        ]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return Issued(_cert_pem(cert), _key_pem(key))

    def write(self, directory: Path) -> Path:
        """Save the CA in a lab's state directory; returns the CA certificate's path."""
        folder = directory / TLS_DIR
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        _write(folder / CA_KEY_FILE, self.key, 0o600)
        return _write(folder / CA_FILE, self.cert, 0o644)


def _write(path: Path, text: str, mode: int) -> Path:
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    temporary.chmod(mode)
    temporary.replace(path)
    return path


def ca_file(state_directory: Path) -> Path:
    """Where a lab keeps its CA certificate (`curl --cacert` it)."""
    return state_directory / TLS_DIR / CA_FILE


def serial_of(cert_pem: str) -> int:
    """The serial number of a PEM certificate (the first one in the text)."""
    return x509.load_pem_x509_certificate(cert_pem.encode()).serial_number

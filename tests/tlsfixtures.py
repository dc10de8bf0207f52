"""Test certificates made with `cryptography`: a CA, the certificates it signs, combined PEMs.

Shared by the unit and integration tests of TLS (`from tests.tlsfixtures import ...`):

    ca = Authority.create()
    server = ca.issue(("localhost", "127.0.0.1"), days=30)
    server.write_combined(tmp_path / "server.pem")      # chain + key, as MCP_MESH_TLS_CERT_FILE
    ca.write(tmp_path / "ca.pem")                        # as MCP_MESH_TLS_CA_FILE

EC P-256 keys: fast to make, so every test can have its own CA.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey


def new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class Issued:
    """A certificate, its key and the chain above it (without the root)."""

    cert: x509.Certificate
    key: Key
    chain: tuple[x509.Certificate, ...] = ()

    def cert_pem(self) -> bytes:
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.cert, *self.chain)
        )

    def combined_pem(self) -> bytes:
        """Certificate chain then key: the agent's MCP_MESH_TLS_CERT_FILE (HAProxy's layout)."""
        return self.cert_pem() + key_pem(self.key)

    def write_combined(self, path: Path) -> Path:
        path.write_bytes(self.combined_pem())
        return path


@dataclass(frozen=True)
class Authority:
    """A self-signed CA that issues server certificates."""

    cert: x509.Certificate
    key: Key

    @classmethod
    def create(cls, name: str = "mesh test CA") -> Authority:
        key = new_key()
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, path: Path) -> Path:
        path.write_bytes(self.pem())
        return path

    def issue(
        self,
        names: tuple[str, ...] = ("localhost", "127.0.0.1"),
        *,
        days: float = 30,
        valid_from_days: float = -1,
        key: Key | None = None,
    ) -> Issued:
        """A server certificate for `names` (SANs), valid from `valid_from_days` (relative to
        now, negative: in the past) until `days` from now (negative: already expired)."""
        key = key or new_key()
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + timedelta(days=valid_from_days))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(_san(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .sign(self.key, hashes.SHA256())
        )
        return Issued(cert, key)

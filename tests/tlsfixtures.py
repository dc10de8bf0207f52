"""Test certificates: a CA, the certificates it signs, combined PEMs, what a server presents.

Shared by the unit and integration tests of TLS (`from tests.tlsfixtures import ...`); the
certificates are the lab's own (`lab.tls.LabCa`), with the validity a test asks for:

    ca = Authority.create()
    server = ca.issue(("agent-1", "127.0.0.1"), days=2)   # SANs: also localhost, 127.0.0.1
    server.write_combined(tmp_path / "server.pem")        # chain + key: MCP_MESH_TLS_CERT_FILE
    ca.write(tmp_path / "ca.pem")                         # MCP_MESH_TLS_CA_FILE
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from lab.tls import CLOCK_SKEW, LabCa
from mcp_mesh_sdk.serving.tls import client_context


def fresh_key_pem() -> bytes:
    """The PEM of a new private key that belongs to no certificate."""
    return Authority.create("spare").issue().key_pem


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key (PEM)."""

    cert: x509.Certificate
    cert_pem: bytes
    key_pem: bytes

    def combined_pem(self) -> bytes:
        """Certificate then key: the agent's MCP_MESH_TLS_CERT_FILE (HAProxy's layout)."""
        return self.cert_pem + self.key_pem

    def write_combined(self, path: Path) -> Path:
        path.write_bytes(self.combined_pem())
        return path


@dataclass(frozen=True)
class Authority:
    """A self-signed CA that issues server certificates."""

    lab: LabCa

    @classmethod
    def create(cls, name: str = "mesh test") -> Authority:
        return cls(LabCa.create(name))

    def pem(self) -> bytes:
        return self.lab.cert.encode()

    def write(self, path: Path) -> Path:
        path.write_bytes(self.pem())
        return path

    def issue(
        self,
        names: tuple[str, str] = ("localhost", "127.0.0.1"),
        *,
        days: float = 30,
        valid_from_days: float = -1,
    ) -> Issued:
        """A server certificate for (host name, address), valid from `valid_from_days`
        (relative to now, negative: in the past) until `days` from now (negative: expired)."""
        start = datetime.now(UTC) + timedelta(days=valid_from_days)
        issued = self.lab.issue(
            names[0],
            names[1],
            now=start + CLOCK_SKEW,
            days=days - valid_from_days,
        )
        cert_pem = issued.cert.encode()
        return Issued(x509.load_pem_x509_certificate(cert_pem), cert_pem, issued.key.encode())


def served_certificate(port: int, ca_file: Path) -> x509.Certificate:
    """The certificate the TLS server on 127.0.0.1:`port` presents (verified by `ca_file`)."""
    context = client_context("https://127.0.0.1", ca_file)
    assert context is not None
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)

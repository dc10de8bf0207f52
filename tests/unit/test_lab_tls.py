"""The lab's CA and host certificates (lab/tls.py), checked the way clients will use them: a
TLS handshake verified against the CA, by host name and by address."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509

from lab.errors import LabError
from lab.tls import CA_DAYS, HOST_DAYS, LabCa, ca_file, serial_of

ADDRESS = "10.231.7.11"


@pytest.fixture(scope="module")
def ca() -> LabCa:
    return LabCa.create("mesh")


def handshake(tmp_path: Path, ca: LabCa, cert: str, key: str, server_hostname: str) -> str:
    """Serve `cert` on a loopback port and connect verifying against `ca` -> the peer's CN."""
    chain = tmp_path / "server.pem"
    chain.write_text(cert + key)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(chain)
    client_context = ssl.create_default_context(cadata=ca.cert)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            connection, _ = listener.accept()
            try:
                with server_context.wrap_socket(connection, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                client_context.wrap_socket(raw, server_hostname=server_hostname) as tls,
            ):
                peer = tls.getpeercert()
                tls.sendall(b"x")
        finally:
            server.join(timeout=5)
    subject = dict(item[0] for item in peer["subject"])
    return str(subject["commonName"])


@pytest.mark.parametrize("name", ["agent1", ADDRESS, "localhost", "127.0.0.1"])
def test_a_host_certificate_verifies_against_the_lab_ca_by_each_name_it_is_reached_by(
    tmp_path: Path, ca: LabCa, name: str
) -> None:
    issued = ca.issue("agent1", ADDRESS)
    assert handshake(tmp_path, ca, issued.cert, issued.key, name) == "agent1"


def test_another_hosts_name_or_another_ca_is_refused(tmp_path: Path, ca: LabCa) -> None:
    issued = ca.issue("agent1", ADDRESS)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(tmp_path, ca, issued.cert, issued.key, "agent2")
    other = LabCa.create("mesh")
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(tmp_path, other, issued.cert, issued.key, "agent1")


def test_validity_is_one_year_for_the_ca_and_90_days_for_hosts(ca: LabCa) -> None:
    now = datetime.datetime.now(datetime.UTC)
    authority = x509.load_pem_x509_certificate(ca.cert.encode())
    host = x509.load_pem_x509_certificate(ca.issue("lb1", "10.231.7.10").cert.encode())
    for cert, days in ((authority, CA_DAYS), (host, HOST_DAYS)):
        assert cert.not_valid_before_utc <= now
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert lifetime == datetime.timedelta(days=days)


def test_a_reissued_certificate_has_a_new_serial_and_key(ca: LabCa) -> None:
    first, second = ca.issue("lb1", "10.231.7.10"), ca.issue("lb1", "10.231.7.10")
    assert serial_of(first.cert) != serial_of(second.cert)
    assert first.key != second.key


def test_the_ca_is_saved_in_the_state_directory_its_key_readable_by_its_owner_only(
    tmp_path: Path, ca: LabCa
) -> None:
    path = ca.write(tmp_path)
    assert path == ca_file(tmp_path)
    assert path.read_text() == ca.cert
    assert (path.parent / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    assert LabCa.load(tmp_path) == ca
    with pytest.raises(LabError, match="the lab's CA is not in"):
        LabCa.load(tmp_path / "elsewhere")

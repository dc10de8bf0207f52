"""TLS on the shared server skeleton (`serving.tls`, `serving.server`): a real server on
loopback with test certificates; plain HTTP, slow handshakes, rotation and bad files."""

from __future__ import annotations

import http.client
import logging
import os
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from test_serving_limits import serving

from mcp_mesh_sdk.envreader import EnvReader
from mcp_mesh_sdk.serving.limits import ConnectionLimits
from mcp_mesh_sdk.serving.tls import (
    CertificateReloader,
    TlsError,
    TlsSettings,
    client_context,
    read_tls_settings,
)
from tests.tlsfixtures import Authority, fresh_key_pem, served_certificate


def https_get(port: int, ca: Path) -> tuple[int, bytes]:
    context = client_context(f"https://127.0.0.1:{port}", ca)
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    try:
        connection.request("GET", "/")
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority.create()


@pytest.fixture
def files(tmp_path: Path, ca: Authority) -> tuple[TlsSettings, Path]:
    pem = ca.issue(("localhost", "127.0.0.1")).write_combined(tmp_path / "server.pem")
    return TlsSettings(cert_file=pem), ca.write(tmp_path / "ca.pem")


def test_the_listener_speaks_tls_verified_against_the_ca(files: tuple[TlsSettings, Path]) -> None:
    settings, ca_file = files
    with serving(tls=settings) as (port, _):
        assert https_get(port, ca_file) == (200, b"hi")


def test_plain_http_to_a_tls_listener_gets_no_http_answer(files: tuple[TlsSettings, Path]) -> None:
    settings, _ = files
    with serving(tls=settings) as (port, _):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            try:
                answer = sock.recv(65536)
            except ConnectionResetError:
                answer = b""
        assert not answer.startswith(b"HTTP/")


def test_a_client_that_never_finishes_its_handshake_is_closed_after_the_header_timeout(
    files: tuple[TlsSettings, Path],
) -> None:
    settings, _ = files
    limits = ConnectionLimits(header_timeout=0.5)
    with serving(limits, settings) as (port, _):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            started = time.monotonic()
            sock.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never the rest
            try:
                rest = sock.recv(1024)
            except ConnectionResetError:
                rest = b""
            took = time.monotonic() - started
        assert rest == b""
        assert took < 3


def test_a_wrong_ca_is_refused(tmp_path: Path, files: tuple[TlsSettings, Path]) -> None:
    settings, _ = files
    other = Authority.create("another CA").write(tmp_path / "other.pem")
    with serving(tls=settings) as (port, _), pytest.raises(ssl.SSLCertVerificationError):
        https_get(port, other)


def test_a_separate_key_file_serves_too(tmp_path: Path, ca: Authority) -> None:
    issued = ca.issue()
    cert = tmp_path / "cert.pem"
    cert.write_bytes(issued.cert_pem)
    key = tmp_path / "key.pem"
    key.write_bytes(issued.key_pem)
    with serving(tls=TlsSettings(cert_file=cert, key_file=key)) as (port, _):
        assert https_get(port, ca.write(tmp_path / "ca.pem"))[0] == 200


def test_a_bad_certificate_file_stops_the_start_with_a_clear_reason(
    tmp_path: Path, ca: Authority
) -> None:
    issued = ca.issue()
    pem = tmp_path / "server.pem"
    pem.write_bytes(issued.cert_pem + fresh_key_pem())
    with pytest.raises(TlsError, match="private key does not match the certificate"):
        CertificateReloader(TlsSettings(cert_file=pem))
    with pytest.raises(TlsError, match="cannot read"):
        CertificateReloader(TlsSettings(cert_file=tmp_path / "missing.pem"))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def replace_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".new")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def test_reload_looks_at_most_once_a_second_and_keeps_the_old_certificate_on_a_bad_file(
    tmp_path: Path, ca: Authority, caplog: pytest.LogCaptureFixture
) -> None:
    pem = ca.issue().write_combined(tmp_path / "server.pem")
    clock = Clock()
    reloader = CertificateReloader(TlsSettings(cert_file=pem), clock=clock)
    replace_atomically(pem, ca.issue().combined_pem())
    clock.now = 0.5
    assert not reloader.check()  # too soon
    clock.now = 1.0
    assert reloader.check()
    replace_atomically(pem, b"not a PEM at all")
    with caplog.at_level(logging.ERROR, logger="mcp_mesh_sdk.serving.tls"):
        for second in range(2, 6):
            clock.now = float(second)
            assert not reloader.check()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # once per change, not once a second
    assert "still serving the previous one" in errors[0].getMessage()
    assert reloader.reloads == 1


def test_rotation_under_load_new_connections_see_the_new_certificate_and_none_fails(
    tmp_path: Path, ca: Authority
) -> None:
    ca_file = ca.write(tmp_path / "ca.pem")
    pem = ca.issue().write_combined(tmp_path / "server.pem")
    with serving(tls=TlsSettings(cert_file=pem)) as (port, server):
        first = served_certificate(port, ca_file)
        new = ca.issue()
        failures: list[str] = []
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                try:
                    status, _ = https_get(port, ca_file)
                    if status != 200:
                        failures.append(str(status))
                except OSError as exc:
                    failures.append(repr(exc))

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(0.3)
        replace_atomically(pem, new.combined_pem())
        deadline = time.monotonic() + 5
        seen = first
        while time.monotonic() < deadline and seen.serial_number != new.cert.serial_number:
            time.sleep(0.1)
            seen = served_certificate(port, ca_file)
        time.sleep(0.3)
        stop.set()
        for worker in workers:
            worker.join(10)
        assert seen.serial_number == new.cert.serial_number
        assert failures == []
        replace_atomically(pem, ca.issue().cert_pem)  # no key: refused, the new one stays
        time.sleep(1.5)
        assert served_certificate(port, ca_file).serial_number == new.cert.serial_number
        assert https_get(port, ca_file)[0] == 200
        assert server.certificates is not None and server.certificates.reloads == 1


def test_settings_from_the_env_with_either_prefix() -> None:
    registry_files = {"CERT": "server.pem", "CA": "ca.pem"}
    env = {
        f"MCP_MESH_REGISTRY_TLS_{k}_FILE": f"/etc/mcp-mesh/tls/{v}"
        for k, v in registry_files.items()
    }
    env |= {"MCP_MESH_TLS_KEY_FILE": "/etc/key.pem", "MCP_MESH_TLS_CA_FILE": "relative/ca.pem"}
    read = EnvReader(env)
    registry = read_tls_settings(read, "MCP_MESH_REGISTRY_")
    assert registry.enabled and registry.ca_file == Path("/etc/mcp-mesh/tls/ca.pem")
    agent = read_tls_settings(read, "MCP_MESH_")
    assert not agent.enabled
    assert {p.variable for p in read.problems} == {"MCP_MESH_TLS_KEY_FILE", "MCP_MESH_TLS_CA_FILE"}


def test_client_context_verifies_the_chain_and_relaxes_the_name_for_loopback_only(
    tmp_path: Path, ca: Authority
) -> None:
    ca_file = ca.write(tmp_path / "ca.pem")
    assert client_context("http://127.0.0.1:8080", ca_file) is None
    for url in ("https://127.0.0.1:8080", "https://[::1]:8080", "https://localhost"):
        context = client_context(url, ca_file)
        assert context is not None and not context.check_hostname
        assert context.verify_mode == ssl.CERT_REQUIRED
    remote = client_context("https://registry.example:8000", ca_file)
    assert remote is not None and remote.check_hostname
    assert remote.minimum_version >= ssl.TLSVersion.TLSv1_2
    with pytest.raises(TlsError, match="CA file"):
        client_context("https://x", tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(TlsError, match="no PEM certificate"):
        client_context("https://x", tmp_path / "junk.pem")

"""The TLS benchmark's certificates, HAProxy config, wrk scripts and ratios (no load run)."""

from __future__ import annotations

import shutil
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest

from bench.tls import (
    HAPROXY,
    LOADS,
    PER_REQUEST,
    READ_CALL,
    WRITE_CALL,
    arm_order,
    compare,
    curl_command,
    haproxy_config,
    lua_script,
    make_certificates,
    reading,
    tables,
)


def run(rps: float, p50: float, lb_us: float, agent_us: float = 100.0) -> dict[str, Any]:
    return {
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p50 * 2,
        "non_2xx": 0.0,
        "socket_errors": 0.0,
        "tool_errors": 0.0,
        "lb_cpu_us_per_request": lb_us,
        "agent_cpu_us_per_request": agent_us,
        **dict.fromkeys(PER_REQUEST[2:], 1.0),
    }


def test_certificates_verify_against_the_throwaway_ca_for_localhost(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certs["agent"])  # one PEM: certificate and key
    client = ssl.create_default_context(cafile=str(certs["ca"]))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve() -> None:
            connection, _ = listener.accept()
            try:
                with server.wrap_socket(connection, server_side=True) as wrapped:
                    wrapped.recv(1)
            except (OSError, ssl.SSLError):
                pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with (
            socket.create_connection(listener.getsockname(), timeout=5) as raw,
            client.wrap_socket(raw, server_hostname="localhost") as wrapped,
        ):
            assert wrapped.version() == "TLSv1.3"
        thread.join(5)
    assert (certs["lb"].stat().st_mode & 0o777) == 0o600


@pytest.mark.skipif(shutil.which(HAPROXY) is None, reason="HAProxy is not installed")
def test_haproxy_accepts_the_config_and_verifies_the_tls_agent(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    lb = haproxy_config(tmp_path, certs, {"plain": 18080, "tls": 18443})  # runs haproxy -c
    text = lb["path"].read_text()
    assert (
        f"ssl crt {certs['lb']} ssl-min-ver TLSv1.2 no-tls-tickets" in text
    )  # a full handshake per connection
    assert "tune.ssl.cachesize 0" in text
    assert f"server agent_tls 127.0.0.1:18443 ssl verify required ca-file {certs['ca']}" in text
    assert "server agent_plain 127.0.0.1:18080\n" in text
    assert "daemon" not in text and "chroot" not in text
    assert text.count("http-reuse always") == 2  # only the two routes of that variant
    assert set(lb["ports"]) == {"plain", "tls", "plain_reuse_always", "tls_reuse_always"}


@pytest.mark.skipif(shutil.which(HAPROXY) is None, reason="HAProxy is not installed")
def test_a_config_haproxy_refuses_is_an_error_not_a_benchmark(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    certs["lb"].write_text("not a certificate\n")
    with pytest.raises(RuntimeError, match="haproxy -c refused"):
        haproxy_config(tmp_path, certs, {"plain": 18080, "tls": 18443})


def test_wrk_scripts_close_each_connection_only_in_the_new_connection_loads(
    tmp_path: Path,
) -> None:
    kept = lua_script(tmp_path, "mcp", "/mcp", new_connection=False).read_text()
    fresh = lua_script(tmp_path, "health_new", "/health", new_connection=True).read_text()
    assert 'wrk.headers["Connection"] = "close"' in fresh
    assert "Connection" not in kept
    assert WRITE_CALL in kept and READ_CALL in kept  # write_file and read_file alternate
    assert "tool errors" in kept and '"isError":true' in kept


def test_ratios_are_tls_over_plain_and_arms_alternate() -> None:
    compared = compare(
        {
            "plain": [run(1000, 1.0, 50), run(900, 1.2, 52), run(1100, 0.8, 48)],
            "tls": [run(800, 1.5, 60), run(700, 1.5, 70), run(600, 2.0, 65)],
        }
    )
    assert compared["rps_ratio"] == 0.7
    assert compared["p50_ratio"] == 1.5
    assert compared["lb_cpu_per_request_ratio"] == 1.3
    assert arm_order(3) == [("plain", "tls"), ("tls", "plain"), ("plain", "tls")]


def test_new_connection_latency_comes_from_the_samples_with_the_handshake() -> None:
    samples = {"plain": [1.0] * 98 + [5.0, 9.0], "tls": [3.0] * 98 + [7.0, 30.0]}
    compared = compare({"plain": [run(1000, 0.2, 50)], "tls": [run(300, 0.3, 400)]}, samples)
    assert (compared["plain"]["p50_ms"], compared["plain"]["p99_ms"]) == (1.0, 5.0)
    assert compared["p50_ratio"] == 3.0 and compared["p99_ratio"] == 1.4
    assert compared["tls"]["wrk_p50_ms_median_without_connect"] == 0.3


def test_reading_says_whether_the_handshake_is_the_cost() -> None:
    def load(rps_ratio: float) -> dict[str, Any]:
        return compare({"plain": [run(1000, 1.0, 100)], "tls": [run(1000 * rps_ratio, 2.0, 300)]})

    costly = {name: load(0.2 if "new" in name else 0.9) for name in LOADS}
    assert "the handshakes, not the encryption" in reading(costly)
    cheap = {name: load(0.9) for name in LOADS}
    assert "cost no more than" in reading(cheap)
    ratios = tables(costly)[0]
    assert ratios["rows"][0][:3] == ["health", 50, 0.9]


def test_curl_makes_each_latency_sample_on_a_new_connection(tmp_path: Path) -> None:
    command = curl_command("https://127.0.0.1:8443", "/mcp", tmp_path / "ca.pem", 3)
    assert command.count("--next") == 2 and command.count("Connection: close") == 3
    assert "--no-sessionid" in command  # a full handshake each time
    bodies = [command[n + 1] for n, arg in enumerate(command) if arg == "--data-binary"]
    assert bodies == [WRITE_CALL, READ_CALL, WRITE_CALL]

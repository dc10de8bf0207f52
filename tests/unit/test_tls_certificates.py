"""Certificate files (`certificates`): `check-config --tls-cert` as an Ansible `validate:`,
`check-config --env-file` with TLS files, `diagnose` expiry findings and their incidents."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mcp_mesh_sdk.certificates import (
    EXPIRY_P2_DAYS,
    EXPIRY_P3_DAYS,
    expiry_incident,
    expiry_severity,
    read_expiry,
)
from mcp_mesh_sdk.cli import EXIT_CONFIG, main
from mcp_mesh_sdk.diagnose import diagnose
from mcp_mesh_sdk.incidents import IncidentDetector, IncidentStore, Severity
from tests.tlsfixtures import Authority, fresh_key_pem

TOKEN = "agent-token-value-0123456789"


class QuietProbe:
    def cpu_percent(self) -> float:
        return 1.0

    def memory(self) -> tuple[float, float]:
        return 10.0, 4096.0

    def disk(self, path: Path) -> tuple[float, float, float]:
        return 10.0, 90.0, 100.0

    def load_average(self) -> list[float]:
        return [0.0, 0.0, 0.0]


@pytest.fixture
def ca() -> Authority:
    return Authority.create()


def check(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check-config", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_good_pem_passes_and_names_what_it_checked(
    tmp_path: Path, ca: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = ca.issue(("agent-1", "127.0.0.1"), days=90).write_combined(tmp_path / "server.pem")
    ca_file = ca.write(tmp_path / "ca.pem")
    code, out, err = check(["--tls-cert", str(pem), "--tls-ca", str(ca_file)], capsys)
    assert code == 0, err
    assert f"certificate file {pem} is valid: CN=agent-1" in out
    assert f"verified against {ca_file}" in out
    assert err == ""


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("mismatched key", "the private key does not match the certificate (CN=localhost)"),
        ("expired", "the certificate (CN=localhost) expired on"),
        ("not yet valid", "the certificate (CN=localhost) not valid before"),
        ("wrong CA", "does not verify against the CA"),
        ("not PEM", "no PEM certificate could be read"),
        ("no key", "no PEM private key found"),
        ("two keys", "2 private keys found, exactly one expected"),
        ("key of the CA first", "the private key belongs to certificate 2"),
    ],
)
def test_a_bad_pem_fails_with_one_line_and_never_shows_the_key(
    tmp_path: Path, ca: Authority, capsys: pytest.CaptureFixture[str], case: str, expected: str
) -> None:
    pem = tmp_path / "server.pem"
    ca_file = ca.write(tmp_path / "ca.pem")
    good = ca.issue()
    if case == "mismatched key":
        data = good.cert_pem + fresh_key_pem()
    elif case == "expired":
        data = ca.issue(days=-1, valid_from_days=-30).combined_pem()
    elif case == "not yet valid":
        data = ca.issue(days=60, valid_from_days=2).combined_pem()
    elif case == "wrong CA":
        data = Authority.create("another CA").issue().combined_pem()
    elif case == "not PEM":
        data = b"\x30\x82 this is DER or junk, not PEM"
    elif case == "no key":
        data = good.cert_pem
    elif case == "two keys":
        data = good.combined_pem() + fresh_key_pem()
    else:  # the chain in the wrong order: the CA certificate, then the server's, then its key
        data = ca.pem() + good.cert_pem + good.key_pem
    pem.write_bytes(data)
    code, out, err = check(["--tls-cert", str(pem), "--tls-ca", str(ca_file)], capsys)
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert expected in err and str(pem) in err
    assert "PRIVATE KEY" not in err
    assert good.key_pem.decode().splitlines()[1] not in err


def test_the_ca_file_itself_must_be_a_pem_certificate(
    tmp_path: Path, ca: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = ca.issue().write_combined(tmp_path / "server.pem")
    (tmp_path / "ca.pem").write_text("not a certificate")
    code, _, err = check(["--tls-cert", str(pem), "--tls-ca", str(tmp_path / "ca.pem")], capsys)
    assert code == 1 and "CA file" in err and "no PEM certificate" in err


def test_a_separate_key_file_and_the_json_report(
    tmp_path: Path, ca: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    issued = ca.issue(days=10)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    code, out, _ = check(["--tls-cert", str(cert), "--tls-key", str(key), "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["valid"] and report["subject"] == "CN=localhost"
    (warning,) = report["warnings"]
    assert re.search(r"expires in (9\.9|10\.0) days", warning)
    code, out, _ = check(["--tls-cert", str(key), "--json"], capsys)
    assert code == 1 and json.loads(out)["valid"] is False


def test_tls_ca_without_tls_cert_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / "agent.env"
    env.write_text(f"MCP_MESH_TOKEN={TOKEN}\nBASE_DIRECTORY={tmp_path}\n")
    code, _, err = check(["--env-file", str(env), "--tls-ca", str(env)], capsys)
    assert code == EXIT_CONFIG and "--tls-ca: goes with --tls-cert" in err


def test_an_env_file_check_covers_the_tls_files_it_names(
    tmp_path: Path, ca: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_file = ca.write(tmp_path / "ca.pem")
    good = ca.issue().write_combined(tmp_path / "good.pem")
    foreign = Authority.create("another CA").issue().write_combined(tmp_path / "foreign.pem")
    base = f"MCP_MESH_TOKEN={TOKEN}\nBASE_DIRECTORY={tmp_path}\nMCP_MESH_TLS_CA_FILE={ca_file}\n"
    env = tmp_path / "agent.env"
    env.write_text(base + f"MCP_MESH_TLS_CERT_FILE={good}\n")
    code, out, err = check(["--env-file", str(env)], capsys)
    assert code == 0, err
    env.write_text(base + f"MCP_MESH_TLS_CERT_FILE={foreign}\n")
    code, out, _ = check(["--env-file", str(env), "--json"], capsys)
    assert code == EXIT_CONFIG
    (problem,) = json.loads(out)["problems"]
    assert problem["variable"] == "MCP_MESH_TLS_CERT_FILE"
    assert "does not verify against the CA" in problem["reason"]

    registry = tmp_path / "registry.env"
    registry.write_text(
        f"MCP_MESH_REGISTRY_TOKEN={TOKEN}\n"
        f"MCP_MESH_REGISTRY_TLS_CERT_FILE={tmp_path / 'absent.pem'}\n"
        f"MCP_MESH_REGISTRY_TLS_CA_FILE={ca_file}\n"
    )
    code, _, err = check(["--env-file", str(registry), "--service", "registry"], capsys)
    assert code == EXIT_CONFIG
    assert "MCP_MESH_REGISTRY_TLS_CERT_FILE: cannot read certificate file" in err
    registry.write_text(
        f"MCP_MESH_REGISTRY_TOKEN={TOKEN}\nMCP_MESH_REGISTRY_TLS_CERT_FILE={good}\n"
        f"MCP_MESH_REGISTRY_TLS_CA_FILE={ca_file}\n"
    )
    code, out, err = check(["--env-file", str(registry), "--service", "registry"], capsys)
    assert code == 0, err


def test_severity_thresholds() -> None:
    assert expiry_severity(EXPIRY_P3_DAYS + 0.1) is None
    assert expiry_severity(EXPIRY_P3_DAYS) is Severity.P3
    assert expiry_severity(EXPIRY_P2_DAYS) is Severity.P2
    assert expiry_severity(0) is Severity.P1


@pytest.mark.parametrize(
    ("days", "severity"),
    [(20, None), (10, "P3_Medium"), (2, "P2_High"), (-1, "P1_Critical")],
)
def test_diagnose_finds_certificates_near_expiry(
    tmp_path: Path, ca: Authority, days: int, severity: str | None
) -> None:
    issued = ca.issue(days=days, valid_from_days=-30)
    pem = issued.write_combined(tmp_path / "lb.pem")
    state = tmp_path / "state"
    state.mkdir()
    report = diagnose(
        state, None, agent_port=None, agent_expected=False, probe=QuietProbe(), certificates=[pem]
    )
    (entry,) = report["certificates"]
    assert entry["severity"] == severity
    assert entry["path"] == str(pem)
    if severity is None:
        assert report["issues"] == []
        return
    (issue,) = report["issues"]
    day = issued.cert.not_valid_after_utc.strftime("%Y-%m-%d")
    assert issue.startswith(f"{severity}: certificate {pem}") and day in issue


def test_diagnose_command_checks_the_agents_certificate_and_the_ones_named(
    tmp_path: Path, ca: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    agent_pem = ca.issue(days=2).write_combined(tmp_path / "server.pem")
    lb_pem = ca.issue(days=200).write_combined(tmp_path / "lb.pem")
    env = tmp_path / "agent.env"
    env.write_text(
        f"MCP_MESH_TOKEN={TOKEN}\nMCP_MESH_STATE_DIR={tmp_path}\nBASE_DIRECTORY={tmp_path}\n"
        f"MCP_MESH_TLS_CERT_FILE={agent_pem}\nMCP_MESH_PORT=1\n"
    )
    argv = ["diagnose", "--json", "--cpu-interval", "0", "--env-file", str(env)]
    code = main([*argv, "--certificate", str(lb_pem), "--certificate", str(tmp_path / "x.pem")])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [c["path"] for c in report["certificates"]] == [
        str(agent_pem),
        str(lb_pem),
        str(tmp_path / "x.pem"),
    ]
    assert report["agent"]["url"].startswith("https://127.0.0.1:1/")
    assert any(i.startswith(f"P2_High: certificate {agent_pem}") for i in report["issues"])
    assert any("Cannot read certificate" in i and "x.pem" in i for i in report["issues"])


def test_the_incident_for_a_certificate_escalates_from_p3_to_p2(
    tmp_path: Path, ca: Authority
) -> None:
    detector = IncidentDetector(IncidentStore(tmp_path))
    pem = ca.issue(days=10).write_combined(tmp_path / "server.pem")
    first = expiry_incident(read_expiry(pem))
    assert first is not None and first.severity == Severity.P3.value
    assert detector.open([first]) == [first]
    again = expiry_incident(read_expiry(pem))
    assert again is not None and detector.open([again]) == []  # still open: not twice
    ca.issue(days=2).write_combined(pem)
    urgent = expiry_incident(read_expiry(pem))
    assert urgent is not None and detector.open([urgent]) == [urgent]
    assert urgent.severity == Severity.P2.value and str(pem) in urgent.description
    assert expiry_incident(read_expiry(ca.issue(days=60).write_combined(pem))) is None


def test_an_agent_serving_tls_is_warned_about_a_plain_registry_url_and_a_missing_ca(
    tmp_path: Path, ca: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = ca.issue().write_combined(tmp_path / "server.pem")
    env = tmp_path / "agent.env"
    env.write_text(
        f"MCP_MESH_TOKEN={TOKEN}\nBASE_DIRECTORY={tmp_path}\nMCP_MESH_TLS_CERT_FILE={pem}\n"
        "MESH_REGISTRY_URL=http://registry:8000\n"
    )
    code, _, err = check(["--env-file", str(env)], capsys)
    assert code == 0
    assert "MESH_REGISTRY_URL: http:// while this agent serves TLS" in err
    assert "MCP_MESH_TLS_CA_FILE: not set" in err
    ca_file = ca.write(tmp_path / "ca.pem")
    env.write_text(
        f"MCP_MESH_TOKEN={TOKEN}\nBASE_DIRECTORY={tmp_path}\nMCP_MESH_TLS_CERT_FILE={pem}\n"
        f"MESH_REGISTRY_URL=https://registry:8000\nMCP_MESH_TLS_CA_FILE={ca_file}\n"
    )
    code, _, err = check(["--env-file", str(env)], capsys)
    assert code == 0 and "TLS" not in err


def test_diagnose_reads_the_certificate_a_tls_endpoint_serves(
    tmp_path: Path, ca: Authority
) -> None:
    """--served-certificate: what the load balancer shows its clients, expiring in 10 days."""
    import socket
    import ssl
    import threading

    issued = ca.issue(days=10, valid_from_days=-30)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.write_combined(tmp_path / "lb.pem"))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one_handshake() -> None:
        raw, _ = listener.accept()
        try:
            with context.wrap_socket(raw, server_side=True):
                pass
        except (OSError, ssl.SSLError):
            pass  # the reader hangs up once it has the certificate

    server = threading.Thread(target=serve_one_handshake, daemon=True)
    server.start()
    state = tmp_path / "state"
    state.mkdir()
    try:
        report = diagnose(
            state, None, agent_port=None, agent_expected=False, probe=QuietProbe(),
            served_certificates=[f"127.0.0.1:{port}", "127.0.0.1:1"],
        )  # fmt: skip
    finally:
        server.join(timeout=5)
        listener.close()
    served, unreachable = report["certificates"]
    assert served["path"] == f"served by 127.0.0.1:{port}" and served["severity"] == "P3_Medium"
    assert unreachable["path"] == "served by 127.0.0.1:1" and "error" in unreachable
    assert report["issues"][0].startswith(f"P3_Medium: certificate served by 127.0.0.1:{port}")
    assert "Cannot read certificate: 127.0.0.1:1" in report["issues"][1]

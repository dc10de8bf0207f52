"""The roles' templates render what the runtime and HAProxy read back unchanged."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest

from mcp_mesh_sdk.envfile import parse_env_text

ROLES = Path(__file__).resolve().parents[2] / "roles"
TRICKY = "p\"a$s\\w'd `x` #not-a-comment ${HOME}"


def comment(text: str) -> str:
    return "#\n# " + text + "\n#"


def render(role: str, template: str, variables: dict[str, Any]) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLES / role / "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["comment"] = comment
    env.filters["combine"] = lambda base, extra: {**base, **extra}
    return env.get_template(template).render(ansible_managed="Ansible managed", **variables)


def agent_env(values: dict[str, str], secrets: dict[str, str], extra: dict[str, str]) -> str:
    """agent.env as mesh_common's env template renders the agent role's entry."""
    return render(
        "mesh_common",
        "mesh-service.env.j2",
        {
            "mesh_common_file": {
                "service": "agent",
                "read_by": "mcp-mesh-sdk.service",
                "dest": "/etc/mcp-mesh/agent.env",
                "mode": "0640",
                "env": values,
                "env_extra": extra,
                "secret_env": secrets,
            },
            "mesh_common_group": "mcp-mesh",
        },
    )


def test_env_file_values_read_back_exactly_even_with_quotes_and_dollars() -> None:
    text = agent_env(
        {"AGENT_NAME": "agent1", "SECURITY_CONTEXT": TRICKY},
        {"MCP_MESH_TOKEN": "tok-en_1", "DATABASE_URL": TRICKY},
        {},
    )
    assert parse_env_text(text) == {
        "AGENT_NAME": "agent1",
        "SECURITY_CONTEXT": TRICKY,
        "MCP_MESH_TOKEN": "tok-en_1",
        "DATABASE_URL": TRICKY,
    }


def test_empty_secrets_are_left_out_and_extra_variables_override() -> None:
    text = agent_env(
        {"LOG_LEVEL": "INFO", "HEALTH_INTERVAL": "30"},
        {"MCP_MESH_TOKEN": "t", "DATABASE_URL": ""},
        {"HEALTH_INTERVAL": "abc"},
    )
    values = parse_env_text(text)
    assert values == {"LOG_LEVEL": "INFO", "HEALTH_INTERVAL": "abc", "MCP_MESH_TOKEN": "t"}
    assert text.count("HEALTH_INTERVAL=") == 1


def haproxy_config(
    servers: list[dict[str, Any]],
    sticky: bool = True,
    tls: dict[str, Path] | None = None,
    registries: list[dict[str, Any]] | None = None,
    monitoring: list[str] | None = None,
) -> str:
    """haproxy.cfg for the role's defaults; `tls`: {"pem": ..., "ca": ...} turns TLS on;
    `registries`: the registry group's hosts (one by default, no registry frontend);
    `monitoring`: the monitoring hosts' addresses (none by default, no exporter frontend)."""
    registries = registries or [{"inventory_hostname": "lb1", "ansible_host": "10.0.0.10"}]
    variables: dict[str, Any] = {
        name: value
        for name, value in _defaults("mesh_loadbalancer").items()
        if name.startswith("mesh_loadbalancer_")
    }
    variables.update(
        mesh_loadbalancer_sticky_sessions=sticky,
        # What Ansible makes of the defaults' expressions (tests/golden renders them for real).
        mesh_loadbalancer_port=443 if tls else 80,
        mesh_loadbalancer_balance="hdr(Authorization)",  # the agents list mesh_agent_clients
        _mesh_loadbalancer_tls=tls is not None,
        _mesh_loadbalancer_tls_pem=str((tls or {}).get("pem", "/etc/haproxy/certs/mesh.pem")),
        _mesh_loadbalancer_tls_ca=str((tls or {}).get("ca", "/etc/haproxy/certs/ca.pem")),
        _mesh_loadbalancer_backend="mcp_mesh_agents",
        _mesh_loadbalancer_servers=servers,
        _mesh_loadbalancer_server_ids={
            s["inventory_hostname"]: 7 + i for i, s in enumerate(servers)
        },
        _mesh_loadbalancer_registry_backend="mcp_mesh_registry_replicas",
        _mesh_loadbalancer_registry_servers=registries,
        _mesh_loadbalancer_registry_frontend=len(registries) > 1,
        mesh_loadbalancer_metrics_bind_address="10.0.0.10",
        _mesh_loadbalancer_metrics_sources=monitoring or [],
    )
    return render("mesh_loadbalancer", "haproxy.cfg.j2", variables)


def _defaults(role: str) -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
    return data


SERVERS = [
    {"inventory_hostname": "agent1", "ansible_host": "10.0.0.11"},
    {"inventory_hostname": "agent2", "ansible_host": "10.0.0.12", "mesh_agent_port": 9090},
]
# Two registry replicas (the registry frontend is rendered); db1's registry on another port.
REPLICAS = [
    {"inventory_hostname": "lb1", "ansible_host": "10.0.0.10"},
    {"inventory_hostname": "db1", "ansible_host": "10.0.0.30", "mesh_registry_port": 8010},
]


def test_haproxy_has_one_checked_server_per_agent() -> None:
    config = haproxy_config(SERVERS)
    assert "    server agent1 10.0.0.11:8080 id 7\n" in config
    assert "    server agent2 10.0.0.12:9090 id 8\n" in config
    assert "http-check send meth GET uri /ready" in config
    assert (
        "default-server weight 100 check inter 2000 fastinter 1000 downinter 2000 fall 2 rise 2"
        in config
    )  # weight 100: a canary can take 25% of it
    assert "option redispatch" in config and "retries 3" in config
    assert "stats socket /run/haproxy/admin.sock mode 660 level admin" in config


def test_the_exporter_frontend_only_with_monitoring_hosts_and_only_for_them() -> None:
    assert "prometheus-exporter" not in haproxy_config(SERVERS)
    config = haproxy_config(SERVERS, monitoring=["10.0.0.40"])
    frontend = config.split("frontend mcp_mesh_metrics\n", 1)[1].split("\n\n", 1)[0]
    assert frontend.splitlines() == [
        "    bind 10.0.0.10:8404",
        "    no log",
        "    acl monitoring src 127.0.0.1 10.0.0.40",
        "    http-request deny unless monitoring",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    http-request deny",
    ]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed here")
def test_haproxy_accepts_the_exporter_frontend(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(SERVERS, monitoring=["10.0.0.40"]))
    check = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed here")
@pytest.mark.parametrize("sticky", [True, False])
def test_haproxy_accepts_the_rendered_config(tmp_path: Path, sticky: bool) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(SERVERS, sticky=sticky))
    check = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(folder: Path) -> dict[str, Path]:
    """A throwaway CA and a certificate it signs for agent1: {"ca", "pem" (chain + key), ...}."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(ca_key), "-out", str(ca), "-days", "1", "-subj", "/CN=test CA",
    )  # fmt: skip
    paths = {"ca": ca}
    for name in ("agent1", "other"):
        key, csr, crt = (folder / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "1", "-out", str(crt),
        )  # fmt: skip
        paths[f"{name}_crt"], paths[f"{name}_key"] = crt, key
    paths["pem"] = folder / "mesh.pem"
    paths["pem"].write_text(paths["agent1_crt"].read_text() + paths["agent1_key"].read_text())
    return paths


def test_haproxy_hashes_the_client_consistently_when_told_to() -> None:
    config = haproxy_config(SERVERS)
    # Each client's calls on one agent; consistent, so that `lb weight 25%` still works.
    assert "    balance hdr(Authorization)\n    hash-type consistent\n" in config


def test_haproxy_with_tls_listens_for_tls_only_and_verifies_the_agents() -> None:
    config = haproxy_config(SERVERS, tls={"pem": Path("/p/mesh.pem"), "ca": Path("/p/ca.pem")})
    binds = [line.strip() for line in config.splitlines() if line.strip().startswith("bind ")]
    assert binds == ["bind *:443 ssl crt /p/mesh.pem ssl-min-ver TLSv1.2"]  # no plain listener
    assert "    default-server ssl verify required ca-file /p/ca.pem\n" in config
    assert (
        "    server agent1 10.0.0.11:8080 id 7 verifyhost agent1 sni str(agent1) check-sni agent1\n"
        in config
    )
    assert (
        "    server agent2 10.0.0.12:9090 id 8 verifyhost agent2 sni str(agent2) check-sni agent2\n"
        in config
    )


def test_haproxy_without_tls_names_no_certificate_file() -> None:
    config = haproxy_config(SERVERS)
    assert "    bind *:80\n" in config
    settings = [line for line in config.splitlines() if not line.lstrip().startswith("#")]
    assert [line for line in settings if "ssl" in line or "/etc/haproxy/certs" in line] == []


NEEDS_TOOLS = pytest.mark.skipif(
    shutil.which("haproxy") is None or shutil.which("openssl") is None,
    reason="haproxy or openssl is not installed here",
)


@NEEDS_TOOLS
@pytest.mark.parametrize("registries", [None, REPLICAS], ids=["one-registry", "replicas"])
def test_haproxy_accepts_the_rendered_tls_config_with_real_files(
    tmp_path: Path, registries: list[dict[str, Any]] | None
) -> None:
    tls = make_certificates(tmp_path)
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(SERVERS, tls=tls, registries=registries))
    check = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def registry_section(config: str) -> list[str]:
    """The registry frontend and backend, from `frontend mcp_mesh_registry` on."""
    lines = [line.strip() for line in config.splitlines()]
    start = lines.index("frontend mcp_mesh_registry")
    return [line for line in lines[start:] if line and not line.startswith("#")]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed here")
def test_haproxy_accepts_the_registry_frontend(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(SERVERS, registries=REPLICAS))
    check = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_one_registry_gets_no_frontend_and_replicas_one_checked_on_ready() -> None:
    assert "mcp_mesh_registry" not in haproxy_config(SERVERS)
    section = registry_section(haproxy_config(SERVERS, registries=REPLICAS))
    assert "bind *:8001" in section
    assert "http-check send meth GET uri /ready" in section
    assert "http-check expect status 200" in section
    assert [line for line in section if line.startswith("server ")] == [
        "server lb1 10.0.0.10:8000",
        "server db1 10.0.0.30:8010",
    ]


def test_the_registry_frontend_with_tls_listens_for_tls_and_verifies_each_replica() -> None:
    tls = {"pem": Path("/p/mesh.pem"), "ca": Path("/p/ca.pem")}
    section = registry_section(haproxy_config(SERVERS, tls=tls, registries=REPLICAS))
    assert "bind *:8001 ssl crt /p/mesh.pem ssl-min-ver TLSv1.2" in section
    assert "default-server ssl verify required ca-file /p/ca.pem" in section
    assert "server db1 10.0.0.30:8010 verifyhost db1 sni str(db1) check-sni db1" in section


def tls_check(**env: Path) -> subprocess.CompletedProcess[str]:
    """The role's validate: command for a new mesh.pem (MESH_PEM) or ca.pem (MESH_CA)."""
    check_config = ROLES / "mesh_loadbalancer" / "files" / "mesh-tls-check.cfg"
    return subprocess.run(
        ["haproxy", "-c", "-f", str(check_config)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", **{k: str(v) for k, v in env.items()}},
    )


@NEEDS_TOOLS
def test_the_tls_check_accepts_a_certificate_with_its_key_and_a_ca_file(tmp_path: Path) -> None:
    tls = make_certificates(tmp_path)
    assert tls_check(MESH_PEM=tls["pem"]).returncode == 0
    assert tls_check(MESH_CA=tls["ca"]).returncode == 0


@NEEDS_TOOLS
def test_the_tls_check_refuses_a_key_of_another_certificate_and_never_shows_a_key(
    tmp_path: Path,
) -> None:
    tls = make_certificates(tmp_path)
    mismatched = tmp_path / "mismatched.pem"
    mismatched.write_text(tls["agent1_crt"].read_text() + tls["other_key"].read_text())
    only_cert = tmp_path / "only-cert.pem"
    only_cert.write_text(tls["agent1_crt"].read_text())
    for pem, reason in ((mismatched, "inconsistencies"), (only_cert, "No Private Key")):
        check = tls_check(MESH_PEM=pem)
        assert check.returncode != 0 and reason in check.stderr
        key_body = tls["other_key"].read_text().splitlines()[1]
        assert key_body not in check.stdout + check.stderr


@NEEDS_TOOLS
def test_the_tls_check_refuses_a_ca_file_without_a_certificate(tmp_path: Path) -> None:
    tls = make_certificates(tmp_path)
    check = tls_check(MESH_CA=tls["other_key"])
    assert check.returncode != 0 and "ca-file" in check.stderr

"""playbooks/kubernetes.yml renders the agents' ConfigMap, Secret, Deployment and Service from
the inventory the roles use (tests/golden's sample fleet), and they validate offline against the
Kubernetes schemas of a named version (README.md's kubernetes-validate command)."""

from __future__ import annotations

import base64
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import mcp_mesh_sdk
from mcp_mesh_sdk.envfile import parse_env_text
from mesh_ops.image import IMAGE, USER_ID

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
PLAYBOOK = REPO / "playbooks" / "kubernetes.yml"
BIN = Path(sys.executable).parent
SECRETS = {
    "MCP_MESH_TOKEN": "golden-agent-token",
    "MCP_MESH_REGISTRY_TOKEN": "golden-registry-token",
}
POD_SET = {"AGENT_NAME", "MCP_MESH_ADVERTISE_HOST"}  # each pod's own: fieldRef, not ConfigMap
SERVICE_HOSTS = [
    "mcp-mesh-sdk",
    "mcp-mesh-sdk.default",
    "mcp-mesh-sdk.default.svc",
    "mcp-mesh-sdk.default.svc.cluster.local",
]


def render(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(GOLDEN / "inventory.yml"), str(PLAYBOOK),
         "-e", f"mesh_kubernetes_output_dir={out}",
         "-e", f"ansible_python_interpreter={sys.executable}", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )  # fmt: skip


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("kubernetes")
    done = render(out)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return out, done.stdout + done.stderr


def manifest(rendered: tuple[Path, str], name: str) -> dict[str, Any]:
    document = yaml.safe_load((rendered[0] / f"{name}.yml").read_text())
    assert isinstance(document, dict)
    return document


def readme_validate_command() -> list[str]:
    text = (REPO / "README.md").read_text().split("## Container and Kubernetes", 1)[1]
    for line in text.splitlines():
        if line.startswith("kubernetes-validate "):
            return shlex.split(line, comments=True)
    raise AssertionError("README.md shows no kubernetes-validate command")


def test_the_manifests_validate_against_a_named_kubernetes_version(
    rendered: tuple[Path, str],
) -> None:
    command = readme_validate_command()
    assert command[1:4] == ["-k", "1.34.0", "--strict"]
    assert command[4] == "build/kubernetes/*.yml"  # the playbook's default folder
    files = sorted(str(path) for path in rendered[0].glob("*.yml"))
    assert [Path(path).stem for path in files] == ["configmap", "deployment", "secret", "service"]
    done = subprocess.run(
        [str(BIN / "kubernetes-validate"), *command[1:4], *files],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed for resource") == 4
    assert "against version 1.34" in done.stdout


def test_the_configmap_is_the_agent_env_the_role_renders(rendered: tuple[Path, str]) -> None:
    """Same template, same variables: agent1's agent.env as the golden test renders it, less
    the secrets and the two values each pod sets for itself, plus the Service's names."""
    role_env = parse_env_text((GOLDEN / "expected" / "agent1" / "agent.env").read_text())
    expected = {k: v for k, v in role_env.items() if k not in POD_SET and k not in SECRETS}
    hosts = expected["MCP_MESH_ALLOWED_HOSTS"].split(",") + SERVICE_HOSTS
    expected["MCP_MESH_ALLOWED_HOSTS"] = ",".join(hosts)
    data = manifest(rendered, "configmap")["data"]
    assert data == expected
    assert list(data) == list(expected)  # agent.env's order


def test_the_secret_holds_the_tokens_and_is_never_printed(rendered: tuple[Path, str]) -> None:
    secret_file = rendered[0] / "secret.yml"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    data = manifest(rendered, "secret")["data"]
    decoded = {name: base64.b64decode(value).decode() for name, value in data.items()}
    assert set(decoded) == {*SECRETS, "agent-clients"}
    assert {name: decoded[name] for name in SECRETS} == SECRETS
    # agent-clients.j2 as the role renders it: agent1 has no clients, only the comments
    assert decoded["agent-clients"].startswith("#\n# Ansible managed")
    assert not [line for line in decoded["agent-clients"].splitlines() if line[:1] not in ("#", "")]
    for value in SECRETS.values():
        assert value not in rendered[1]
    configmap = (rendered[0] / "configmap.yml").read_text()
    assert not [value for value in SECRETS.values() if value in configmap]


def test_the_deployment_has_the_seeds_replicas_probes_and_resources(
    rendered: tuple[Path, str],
) -> None:
    deployment = manifest(rendered, "deployment")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == f"{IMAGE}:{mcp_mesh_sdk.__version__}"  # what `make image` tags
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/health", "port": "http"},
        "initialDelaySeconds": 30,
        "periodSeconds": 30,
    }
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/ready", "port": "http"},
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
    }
    assert container["resources"] == {
        "requests": {"memory": "128Mi", "cpu": "100m"},
        "limits": {"memory": "512Mi", "cpu": "500m"},
    }
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == USER_ID
    assert pod["terminationGracePeriodSeconds"] == 22  # the unit's TimeoutStopSec
    env = {entry["name"]: entry["valueFrom"] for entry in container["env"]}
    assert env["AGENT_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["MCP_MESH_ADVERTISE_HOST"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    for name in SECRETS:
        assert env[name] == {"secretKeyRef": {"name": "mcp-mesh-sdk-secrets", "key": name}}
    assert container["envFrom"] == [{"configMapRef": {"name": "mcp-mesh-sdk-env"}}]
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    # The root file system is read-only: every directory the agent writes has a volume.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"/var/lib/mcp-mesh", "/var/lib/mcp-mesh/data", "/var/log/mcp-mesh", "/tmp"} <= mounts
    assert "/etc/mcp-mesh" in mounts  # the clients file MCP_MESH_CLIENTS_FILE names


def test_the_service_sends_port_80_to_the_agents(rendered: tuple[Path, str]) -> None:
    service = manifest(rendered, "service")
    assert service["spec"]["selector"] == {"app": "mcp-mesh-sdk"}
    assert service["spec"]["ports"] == [
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"}
    ]


def test_inventory_overrides_reach_the_manifests(tmp_path: Path) -> None:
    done = render(
        tmp_path, "-e", "mesh_agent_port=9191", "-e", "mesh_agent_log_level=DEBUG",
        "-e", "mesh_kubernetes_replicas=5",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:]
    data = yaml.safe_load((tmp_path / "configmap.yml").read_text())["data"]
    assert (data["MCP_MESH_PORT"], data["LOG_LEVEL"]) == ("9191", "DEBUG")
    deployment = yaml.safe_load((tmp_path / "deployment.yml").read_text())
    assert deployment["spec"]["replicas"] == 5
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["ports"][0]["containerPort"] == 9191


def test_an_inventory_without_the_agent_token_is_refused(tmp_path: Path) -> None:
    done = render(tmp_path, "-e", "mesh_agent_token=")
    assert done.returncode != 0
    assert "need mesh_agent_token set" in done.stdout
    assert not list(tmp_path.glob("*.yml"))

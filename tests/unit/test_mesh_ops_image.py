"""mesh_ops.image (`make image`) without building: its buildah settings, the wheelhouse module's
answer, what it takes from the Kubernetes manifests; and playbooks/kubernetes.yml's filters."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mesh_ops import image

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "filter" / "mesh_kubernetes.py"
spec = importlib.util.spec_from_file_location("mesh_kubernetes", PLUGIN)
assert spec and spec.loader
mesh_kubernetes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mesh_kubernetes)


def option_values(arguments: list[str], option: str) -> list[str]:
    return [arguments[i + 1] for i, word in enumerate(arguments) if word == option]


def test_config_sets_user_command_environment_and_the_seeds_healthcheck() -> None:
    env = {"MCP_MESH_PORT": "8080", "LOG_LEVEL": "INFO"}
    arguments = image.config_arguments(env, "1.2.3", "abc123")
    assert option_values(arguments, "--user") == ["10001:10001"]
    assert json.loads(option_values(arguments, "--cmd")[0]) == ["mcp-mesh-sdk", "serve"]
    envs = option_values(arguments, "--env")
    assert "MCP_MESH_PORT=8080" in envs and "LOG_LEVEL=INFO" in envs
    assert envs[0].startswith("PATH=/opt/mcp-mesh/venv/bin:")  # mcp-mesh-sdk found without a path
    assert option_values(arguments, "--port") == ["8080/tcp"]
    # buildah splits the value into words; the quotes keep the shell command one word.
    assert option_values(arguments, "--healthcheck") == [f'CMD-SHELL "{image.HEALTHCHECK}"']
    assert '"' not in image.HEALTHCHECK
    timings = {
        option: option_values(arguments, f"--healthcheck-{option}")[0]
        for option in ("interval", "timeout", "start-period", "retries")
    }
    assert timings == {"interval": "30s", "timeout": "10s", "start-period": "5s", "retries": "3"}
    labels = option_values(arguments, "--label")
    assert "org.opencontainers.image.version=1.2.3" in labels
    assert "io.mcp-mesh.build-id=abc123" in labels


def test_the_healthcheck_probes_the_agents_health_on_its_port() -> None:
    assert "http://127.0.0.1:${MCP_MESH_PORT:-8080}/health" in image.HEALTHCHECK
    assert image.HEALTHCHECK.startswith("curl -fsS ")  # -f: an HTTP error fails the check


def test_the_wheelhouse_modules_answer_names_the_archive_of_the_target() -> None:
    answer = {
        "changed": False,
        "version": "1.0.0",
        "build_id": "b1",
        "archive": "/cache/1.0.0/wheelhouse.tar",
        "archives": {"3.13 x86_64 2.41": "/cache/1.0.0-py3.13-x86_64/wheelhouse.tar"},
    }
    stdout = "\n" + json.dumps(answer) + "\n"
    found = image.parse_wheelhouse_result(stdout, 0, "3.13 x86_64 2.41")
    assert found == image.Wheelhouse("1.0.0", "b1", Path(answer["archives"]["3.13 x86_64 2.41"]))
    assert image.parse_wheelhouse_result(stdout, 0, None).archive == Path(answer["archive"])


def test_a_failed_wheelhouse_build_says_why() -> None:
    failed = json.dumps({"failed": True, "msg": "pip wheel failed (exit 1)"})
    with pytest.raises(image.ImageError, match="pip wheel failed"):
        image.parse_wheelhouse_result(failed, 1, None)
    with pytest.raises(image.ImageError, match="mesh_wheelhouse failed"):
        image.parse_wheelhouse_result("Traceback ...", 1, None)


def test_the_image_user_is_the_roles_service_account() -> None:
    assert image.service_user() == "mcp-mesh"


def test_the_image_leaves_documentation_and_apt_lists_out() -> None:
    excludes = image.tar_excludes()
    assert "--exclude=./usr/share/doc" in excludes
    assert "--exclude=./var/lib/apt/lists" in excludes
    assert not [word for word in excludes if "python" in word or "usr/lib" in word]


def test_writable_directories_are_the_deployments_emptydirs_but_tmp() -> None:
    deployment = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "volumeMounts": [
                                {"name": "clients", "mountPath": "/etc/mcp-mesh"},
                                {"name": "tmp", "mountPath": "/tmp"},
                                {"name": "state", "mountPath": "/var/lib/mcp-mesh"},
                                {"name": "logs", "mountPath": "/var/log/mcp-mesh"},
                            ]
                        }
                    ],
                    "volumes": [
                        {"name": "clients", "secret": {"secretName": "s"}},
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "state", "emptyDir": {}},
                        {"name": "logs", "emptyDir": {}},
                    ],
                }
            }
        }
    }
    assert image.emptydir_mounts(deployment) == ["/var/lib/mcp-mesh", "/var/log/mcp-mesh"]


# -- plugins/filter/mesh_kubernetes.py ----------------------------------------------


def test_env_data_reads_the_template_the_way_the_agent_does() -> None:
    text = '# comment\nA="plain"\nB="quote \\" and \\\\ back"\n\nC="1,2"\n'
    assert mesh_kubernetes.mesh_env_data(text) == {
        "A": "plain",
        "B": 'quote " and \\ back',
        "C": "1,2",
    }


def test_secret_values_are_base64() -> None:
    assert mesh_kubernetes.mesh_base64_values({"T": "tok", "N": 5}) == {"T": "dG9r", "N": "NQ=="}


def test_writable_directories_of_an_env() -> None:
    env = {
        "MCP_MESH_STATE_DIR": "/var/lib/mcp-mesh/",
        "BASE_DIRECTORY": "/var/lib/mcp-mesh/data",
        "MCP_MESH_AUDIT_LOG": "/var/log/mcp-mesh/audit.log",
        "LOG_LEVEL": "INFO",
    }
    assert mesh_kubernetes.mesh_writable_directories(env) == [
        "/var/lib/mcp-mesh",
        "/var/lib/mcp-mesh/data",
        "/var/log/mcp-mesh",
    ]
    assert mesh_kubernetes.mesh_writable_directories({"BASE_DIRECTORY": "relative"}) == []


def test_volume_names_are_dns_labels() -> None:
    assert mesh_kubernetes.mesh_volume_name("/var/lib/mcp-mesh") == "var-lib-mcp-mesh"
    assert mesh_kubernetes.mesh_volume_name("/srv/My_Data//x") == "srv-my-data-x"
    assert len(mesh_kubernetes.mesh_volume_name("/" + "a" * 100)) == 63

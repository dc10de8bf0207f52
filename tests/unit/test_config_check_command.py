"""`mcp-mesh-sdk check-config`: what the roles' `validate:` step and an operator see."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_mesh_sdk.cli import EXIT_CONFIG, main

TOKEN = "agent-token-value-0123456789"


def write_env(tmp_path: Path, text: str, name: str = "agent.env") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_file_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = write_env(tmp_path, f"MCP_MESH_TOKEN={TOKEN}\nBASE_DIRECTORY={tmp_path}\n")
    assert main(["check-config", "--env-file", str(env)]) == 0
    captured = capsys.readouterr()
    assert "is valid" in captured.out
    assert "BASE_DIRECTORY" not in captured.err


def test_missing_base_directory_is_a_warning_not_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = write_env(tmp_path, f"MCP_MESH_TOKEN={TOKEN}\nBASE_DIRECTORY={tmp_path}/later\n")
    assert main(["check-config", "--env-file", str(env)]) == 0
    assert "BASE_DIRECTORY: " in capsys.readouterr().err


def test_a_base_directory_that_is_not_a_directory_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").write_text("a file, not a folder")
    env = write_env(tmp_path, f"MCP_MESH_TOKEN={TOKEN}\nBASE_DIRECTORY={tmp_path}/data\n")
    assert main(["check-config", "--env-file", str(env)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"BASE_DIRECTORY: {tmp_path}/data is not a directory (a regular file)" in err
    assert "does not exist" not in err
    os.mkfifo(tmp_path / "pipe")
    env = write_env(tmp_path, f"MCP_MESH_TOKEN={TOKEN}\nBASE_DIRECTORY={tmp_path}/pipe\n")
    assert main(["check-config", "--env-file", str(env), "--json"]) == EXIT_CONFIG
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == [
        {"variable": "BASE_DIRECTORY", "reason": f"{tmp_path}/pipe is not a directory (a FIFO)"}
    ]


def test_the_root_as_base_directory_is_refused_also_through_a_symlink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = write_env(tmp_path, f"MCP_MESH_TOKEN={TOKEN}\nBASE_DIRECTORY=/\n")
    assert main(["check-config", "--env-file", str(env)]) == EXIT_CONFIG
    assert "BASE_DIRECTORY: must not be /: that is the root of the file system" in (
        capsys.readouterr().err
    )
    (tmp_path / "data").symlink_to("/etc")
    env = write_env(tmp_path, f"MCP_MESH_TOKEN={TOKEN}\nBASE_DIRECTORY={tmp_path}/data\n")
    assert main(["check-config", "--env-file", str(env)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"BASE_DIRECTORY: {tmp_path}/data leads to /etc: must not be /etc" in err


def test_bad_file_exits_78_naming_every_bad_variable_without_secrets(tmp_path: Path) -> None:
    env = write_env(
        tmp_path,
        f"MCP_MESH_TOKEN={TOKEN}\nMCP_MESH_PORT=99999\nHEALTH_INTERVAL=soon\n"
        "SECRET_KEY=do-not-print-me\nMCP_MESH_PORTT=1\n",
    )
    done = subprocess.run(
        [sys.executable, "-m", "mcp_mesh_sdk", "check-config", "--env-file", str(env)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == EXIT_CONFIG
    assert "MCP_MESH_PORT: must be an integer from 1 to 65535" in done.stderr
    assert "HEALTH_INTERVAL: must be" in done.stderr
    assert "warning: MCP_MESH_PORTT: unknown variable" in done.stderr
    assert "Traceback" not in done.stderr
    for secret in (TOKEN, "do-not-print-me"):
        assert secret not in done.stdout + done.stderr


def test_json_output_lists_problems_warnings_and_redacted_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = write_env(tmp_path, f"MCP_MESH_TOKEN={TOKEN}\nMESH_EXTRA=1\n")
    assert main(["check-config", "--env-file", str(env), "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["valid"] is True
    assert report["settings"]["token"] == "(set)"
    assert any(w.startswith("MESH_EXTRA") for w in report["warnings"])
    assert TOKEN not in out

    bad = write_env(tmp_path, "LOG_LEVEL=loud\n", name="bad.env")
    assert main(["check-config", "--env-file", str(bad), "--json"]) == EXIT_CONFIG
    report = json.loads(capsys.readouterr().out)
    assert {p["variable"] for p in report["problems"]} == {"LOG_LEVEL", "MCP_MESH_TOKEN"}


def test_missing_or_malformed_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--env-file", str(tmp_path / "absent.env")]) == EXIT_CONFIG
    assert "No such file" in capsys.readouterr().err
    broken = write_env(tmp_path, "this is not a pair\n")
    assert main(["check-config", "--env-file", str(broken), "--json"]) == EXIT_CONFIG
    assert json.loads(capsys.readouterr().out)["valid"] is False


def test_reads_only_the_file_not_this_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MCP_MESH_TOKEN", TOKEN)
    env = write_env(tmp_path, "LOG_LEVEL=INFO\n")
    assert main(["check-config", "--env-file", str(env)]) == EXIT_CONFIG
    assert "MCP_MESH_TOKEN: not set" in capsys.readouterr().err


def test_registry_service_is_checked_with_the_registry_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("mcp_mesh_sdk.registry.config")
    env = write_env(tmp_path, "MCP_MESH_REGISTRY_PORT=not-a-port\n", name="registry.env")
    assert main(["check-config", "--env-file", str(env), "--service", "registry"]) == EXIT_CONFIG
    assert "MCP_MESH_REGISTRY_PORT" in capsys.readouterr().err


# An agent.env as the previous release rendered it: still carries CACHE_TTL and SECRET_KEY.
PREVIOUS_RELEASE_ENV = f"""\
MESH_REGISTRY_URL="http://192.0.2.10:8000"
AGENT_NAME="agent2"
LOG_LEVEL="DEBUG"
CACHE_TTL="300"
MCP_MESH_PORT="9090"
MCP_MESH_TOKEN="{TOKEN}"
SECRET_KEY="previous-release-secret-key"
"""


def test_env_file_of_the_previous_release_passes_with_deprecation_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = write_env(tmp_path, PREVIOUS_RELEASE_ENV + f"BASE_DIRECTORY={tmp_path}\n")
    assert main(["check-config", "--env-file", str(env)]) == 0
    captured = capsys.readouterr()
    assert "is valid" in captured.out
    assert "warning: CACHE_TTL: no longer used" in captured.err
    assert "warning: SECRET_KEY: no longer used" in captured.err
    assert "previous-release-secret-key" not in captured.out + captured.err

    assert main(["check-config", "--env-file", str(env), "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["valid"] is True
    assert "cache_ttl" not in report["settings"]
    assert "secret_key" not in report["settings"]
    assert "previous-release-secret-key" not in out


def test_no_warning_about_the_default_registry_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = write_env(tmp_path, f"MCP_MESH_TOKEN={TOKEN}\nBASE_DIRECTORY={tmp_path}\n")
    assert main(["check-config", "--env-file", str(env), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["mesh_registry_url"] == "http://localhost:8000"
    assert not any(w.startswith("MESH_REGISTRY_URL") for w in report["warnings"])


def test_any_address_as_a_trusted_proxy_is_refused_a_specific_network_is_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = f"MCP_MESH_TOKEN={TOKEN}\nBASE_DIRECTORY={tmp_path}\n"
    for forged_anything in ("*", "10.0.0.5,*", "0.0.0.0/0"):
        env = write_env(tmp_path, base + f"MCP_MESH_TRUSTED_PROXIES={forged_anything}\n")
        done = subprocess.run(
            [sys.executable, "-m", "mcp_mesh_sdk", "check-config", "--env-file", str(env)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == EXIT_CONFIG, forged_anything
        assert "MCP_MESH_TRUSTED_PROXIES: " in done.stderr
        assert "trusts every address" in done.stderr and "Traceback" not in done.stderr
        assert TOKEN not in done.stdout + done.stderr
    env = write_env(tmp_path, base + "MCP_MESH_TRUSTED_PROXIES=*\n")
    assert main(["check-config", "--env-file", str(env), "--json"]) == EXIT_CONFIG
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert problem["variable"] == "MCP_MESH_TRUSTED_PROXIES"
    env = write_env(tmp_path, base + "MCP_MESH_TRUSTED_PROXIES=10.0.0.0/24,fd00::7\n")
    assert main(["check-config", "--env-file", str(env)]) == 0
    assert "is valid" in capsys.readouterr().out

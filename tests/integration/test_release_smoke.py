"""The release smoke test against real MCP servers on loopback, with the real official client."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import AGENT_TOKEN, RunningAgent, wait_until
from processes import free_port

from mcp_mesh_sdk import __version__
from mcp_mesh_sdk.cli import main
from mcp_mesh_sdk.config import Secret, load_agent_config
from mcp_mesh_sdk.release import Activation, Plan, SystemHost
from mcp_mesh_sdk.smoke import SMOKE_PREFIX, STALE_SECONDS, SmokeTarget, run_smoke

pytestmark = pytest.mark.integration
ALL_CHECKS = ["initialize", "tools/list", "write_file", "read_file", "list_directory",
              "file_info", "cleanup"]  # fmt: skip


def target_of(env: dict[str, str], **changes: Any) -> SmokeTarget:
    """The smoke target `release activate` would build from this agent environment."""
    target = SmokeTarget.of_agent(
        load_agent_config(env), f"http://127.0.0.1:{env['MCP_MESH_PORT']}"
    )
    return replace(target, **changes)


def smoke_leftovers(data: Path) -> list[str]:
    return [str(path) for path in data.rglob(".mcp-mesh-*")]


def write_env(path: Path, env: dict[str, str]) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    return path


def test_the_smoke_passes_against_a_real_agent_and_leaves_nothing_behind(
    agent: RunningAgent, agent_env: dict[str, str]
) -> None:
    (agent.data / "notes.txt").write_text("a client's file\n")
    stale = agent.data / f"{SMOKE_PREFIX}0badc0ffee"  # left by an earlier smoke long ago
    stale.mkdir()
    (stale / "smoke.txt").write_text("late write")
    old = time.time() - STALE_SECONDS - 60
    os.utime(stale, (old, old))

    result = run_smoke(target_of(agent_env))

    assert result.passed, result.to_json()
    assert result.checks == ALL_CHECKS
    assert 0 < result.seconds < 30
    assert smoke_leftovers(agent.data) == []
    assert [path.name for path in agent.data.iterdir()] == ["notes.txt"]


def test_release_smoke_command_prints_json_and_never_the_token(
    agent: RunningAgent,
    agent_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env_file = write_env(tmp_path / "agent.env", agent_env)

    code = main(["release", "smoke", "--env-file", str(env_file), "--json"])

    out, err = capsys.readouterr()
    assert code == 0, err
    document = json.loads(out)
    assert document["passed"] is True and document["checks"] == ALL_CHECKS
    assert set(document) == {"passed", "checks", "seconds"}
    assert AGENT_TOKEN not in out + err
    assert smoke_leftovers(agent.data) == []


def test_without_base_directory_only_initialize_and_tools_list_run(
    agent_env: dict[str, str], start_agent: Callable[..., RunningAgent]
) -> None:
    env = {**agent_env, "BASE_DIRECTORY": ""}  # empty: unset, the file tools are disabled
    start_agent(env)
    target = target_of(env)

    result = run_smoke(target)

    assert target.base_directory is None
    assert result.passed, result.to_json()
    assert result.checks == ["initialize", "tools/list"]
    assert smoke_leftovers(Path(agent_env["BASE_DIRECTORY"])) == []


def test_a_tool_error_fails_the_smoke_naming_the_tool_and_its_message(
    agent: RunningAgent, agent_env: dict[str, str]
) -> None:
    result = run_smoke(target_of(agent_env, extension=".exe"))  # not an allowed extension

    assert not result.passed
    assert result.checks == ["initialize", "tools/list"]
    assert result.failed_check == "write_file"
    assert result.error is not None
    assert result.error.startswith("write_file answered an error: refused:")
    assert "allowed extension" in result.error
    assert smoke_leftovers(agent.data) == []


def test_a_wrong_token_fails_at_initialize_with_the_http_status(
    agent: RunningAgent, agent_env: dict[str, str]
) -> None:
    wrong = "not-the-agent-token-0123456789abcdef"
    result = run_smoke(target_of(agent_env, token=Secret(wrong)))

    assert not result.passed
    assert (result.failed_check, result.checks) == ("initialize", [])
    assert "HTTP 401" in (result.error or "")
    assert wrong not in json.dumps(result.to_json())


def test_the_smoke_is_bounded_by_its_timeout(
    agent_env: dict[str, str], start_agent: Callable[..., RunningAgent]
) -> None:
    start_agent({**agent_env, "MCP_MESH_TEST_TOOL_DELAY": "5"})  # every tool call waits 5 s

    started = time.monotonic()
    result = run_smoke(target_of(agent_env), timeout=1.0)
    took = time.monotonic() - started

    assert not result.passed
    assert result.failed_check == "write_file"
    assert result.error == "no answer within 1 s"
    assert took < 3.0
    # the write lands when its delay is over: hidden, not backed up, removed by a later smoke


def test_activation_smokes_the_real_agent_and_reports_it(
    agent: RunningAgent, agent_env: dict[str, str], tmp_path: Path
) -> None:
    class LoopbackHost(SystemHost):
        """Real HTTP on loopback; systemd calls answered as if the unit restarted fine."""

        def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
            return subprocess.CompletedProcess(argv, 0, "101\n", "")

    release = tmp_path / "install" / "releases" / __version__
    release.mkdir(parents=True)
    plan = Plan(
        release_dir=release,
        install_dir=release.parent.parent,
        service="agent",
        state_dir=Path(agent_env["MCP_MESH_STATE_DIR"]),
        url=agent.base_url,
        timeout=20.0,
        soak=0.2,
        smoke=True,
        smoke_target=target_of(agent_env),
    )

    report = Activation(plan, host=LoopbackHost()).run().to_json()

    assert list(report["seconds"]) == [
        "migrate", "switch", "restart", "ready", "smoke", "registry", "soak",
    ]  # fmt: skip
    assert report["smoke"]["passed"] is True and report["smoke"]["checks"] == ALL_CHECKS
    assert smoke_leftovers(agent.data) == []


# -- an MCP server that lacks a tool ------------------------------------------------------------


@contextlib.contextmanager
def serve_mcp_without(missing: str) -> Iterator[str]:
    """An MCPServer with the agent's tools but `missing`, served by uvicorn; yields its /mcp."""
    import uvicorn
    from mcp.server.mcpserver import MCPServer

    server: MCPServer[Any] = MCPServer(name="incomplete-agent")

    async def read_file(path: str) -> str:
        return ""

    async def write_file(path: str, content: str) -> dict[str, Any]:
        return {"path": path, "bytes_written": len(content.encode()), "created": True}

    async def list_directory(path: str = ".") -> dict[str, Any]:
        return {"path": path, "entries": [], "truncated": False}

    async def file_info(path: str) -> dict[str, Any]:
        return {"path": path, "type": "file", "size": 0}

    for tool in (read_file, write_file, list_directory, file_info):
        if tool.__name__ != missing:
            server.tool()(tool)
    app = server.streamable_http_app(json_response=True, stateless_http=True)
    port = free_port()
    web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=web.run, name="incomplete-mcp", daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: web.started, timeout=10)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        web.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("missing", ["file_info", "write_file"])
def test_a_release_whose_tools_list_lacks_a_tool_fails_naming_it(
    tmp_path: Path, missing: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with serve_mcp_without(missing) as url:
        target = SmokeTarget(url, Secret("t" * 32), data, ".txt")
        result = run_smoke(target, timeout=10.0)

    assert not result.passed
    assert (result.failed_check, result.checks) == ("tools/list", ["initialize"])
    assert result.error is not None
    assert result.error.startswith(f"the agent does not list the tool {missing} ")
    assert result.cause.startswith(f"tools/list: the agent does not list the tool {missing}")
    assert list(data.iterdir()) == []

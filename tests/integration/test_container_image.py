"""The agent's image (`make image`), run with podman on this machine as README.md shows:
/health names the release, /ready answers 200, and the official MCP client lists the tools.

The image is built once for the module under a tag of its own (offline: the lab's cached base
root and the roles' wheelhouse), and the container and the image are removed afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import Reply, request, wait_until
from mcp.client.session import ClientSession
from processes import free_port
from test_agent_mcp import with_session

import mcp_mesh_sdk
from mcp_mesh_sdk.agent.tools import TOOL_NAMES
from mesh_ops.image import HEALTHCHECK, IMAGE, USER_ID

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def readme_command(program: str) -> list[str]:
    """The first command of README.md's "Container and Kubernetes" block that runs `program`
    (backslash continuations joined, the comment left out)."""
    text = README.read_text().split("## Container and Kubernetes", 1)[1]
    block = text.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words[: len(program.split())] == program.split():
            return words
    raise AssertionError(f"README.md shows no `{program}` command")


def podman(*args: str, check: bool = True, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=120, check=False, **kwargs
    )  # type: ignore[call-overload]
    if check:
        assert done.returncode == 0, f"podman {args[0]}: {done.stderr[-2000:]}"
    return done  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """README's `make image`, under a tag of this test's own."""
    reference = f"{IMAGE}:test-{secrets.token_hex(4)}"
    assert readme_command("make image") == ["make", "image"]
    try:
        done = subprocess.run(
            ["make", "-s", "image", f"IMAGE_TAG={reference}"],
            cwd=REPO, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert f"image: {reference} (release {mcp_mesh_sdk.__version__}," in done.stdout
        yield reference
    finally:
        podman("rmi", "--force", reference, check=False)


@dataclass(frozen=True)
class Container:
    name: str
    base_url: str
    token: str = field(repr=False)  # never shown, not even in a failure's report


@pytest.fixture(scope="module")
def agent(image: str) -> Iterator[Container]:
    """README's `podman run` line with a name, a free loopback port and the image of this test."""
    command = readme_command("podman run")
    name = f"mesh-image-test-{secrets.token_hex(4)}"
    port = free_port()
    command[command.index("--name") + 1] = name
    published = command.index("-p") + 1
    assert command[published] == "127.0.0.1:8080:8080"  # loopback only
    command[published] = f"127.0.0.1:{port}:8080"
    assert command[-1] == f"{IMAGE}:{mcp_mesh_sdk.__version__}"
    command[-1] = image
    for limit in ("nofile", "nproc"):  # explicit limits, below this machine's hard ones
        assert any(word.startswith(f"{limit}=") for word in command)
    assert "MCP_MESH_TOKEN" in command  # passed from the environment, not on the command line
    token = secrets.token_hex(32)
    started = subprocess.run(
        command, capture_output=True, text=True, timeout=120,
        env={**os.environ, "MCP_MESH_TOKEN": token},
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        base = f"http://127.0.0.1:{port}"
        if not wait_until(lambda: _answers(base + "/ready"), timeout=60, step=0.2):
            logs = podman("logs", name, check=False)
            pytest.fail(f"/ready did not answer 200:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
        yield Container(name, base, token)
    finally:
        podman("rm", "--force", "--time", "5", name, check=False)


def _answers(url: str) -> Reply | None:
    try:
        reply = request(url, timeout=2)
    except OSError:
        return None
    return reply if reply.status == 200 else None


def test_health_names_the_release(agent: Container) -> None:
    reply = request(agent.base_url + "/health")
    assert reply.status == 200
    assert reply.json()["version"] == mcp_mesh_sdk.__version__
    assert reply.json()["state"] == "serving"


def test_ready_answers_200(agent: Container) -> None:
    assert request(agent.base_url + "/ready").status == 200


def test_the_official_mcp_client_lists_the_tools(agent: Container) -> None:
    base, token = agent.base_url, agent.token

    async def work(session: ClientSession) -> list[str]:
        return [tool.name for tool in (await session.list_tools()).tools]

    names = with_session(base + "/mcp", work, token=token)
    assert set(TOOL_NAMES) <= set(names)
    statuses: list[int] = []
    with pytest.raises(BaseExceptionGroup):  # the client turns the 401 into an MCPError
        with_session(base + "/mcp", work, token="not-the-token-" + "x" * 32, statuses=statuses)
    assert statuses == [401]


def test_the_image_runs_as_non_root_with_the_seeds_healthcheck(
    image: str, agent: Container
) -> None:
    inspect = ["image", "inspect", "--format"]
    config = json.loads(podman(*inspect, "{{json .Config}}", image).stdout)
    assert config["Cmd"] == ["mcp-mesh-sdk", "serve"]
    assert config["User"] == f"{USER_ID}:{USER_ID}"
    check = json.loads(podman(*inspect, "{{json .Config.Healthcheck}}", image).stdout)
    assert check["Test"] == ["CMD-SHELL", HEALTHCHECK]
    seconds = {key: check[key] / 1e9 for key in ("Interval", "Timeout", "StartPeriod")}
    assert seconds == {"Interval": 30, "Timeout": 10, "StartPeriod": 5}
    assert check["Retries"] == 3
    assert "BASE_DIRECTORY=/var/lib/mcp-mesh/data" in config["Env"]
    assert not [entry for entry in config["Env"] if "TOKEN" in entry]
    assert podman("exec", agent.name, "id", "-u").stdout.strip() == str(USER_ID)
    assert podman("healthcheck", "run", agent.name, check=False).returncode == 0


def test_the_images_runtime_deflates_backups_with_isal(agent: Container) -> None:
    """isal's wheel came with the release's wheelhouse into the offline build and loads."""
    probe = "from mcp_mesh_sdk.backup.gzstream import engine; print(engine(1))"
    assert podman("exec", agent.name, "python", "-c", probe).stdout.strip() == "isal"

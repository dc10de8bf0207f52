"""The agent running on this host, called over loopback with its own token.

The address, port and token come from the agent's env file (default `constants.AGENT_ENV`),
read with the agent's own parser, so the call reaches the agent that file configures. The
token goes only into the request's Authorization header: no message here ever contains it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.config import check_agent_env
from mcp_mesh_sdk.constants import AGENT_ENV
from mcp_mesh_sdk.envfile import read_env_file
from mcp_mesh_sdk.envreader import Secret
from mcp_mesh_sdk.errors import ConfigError, OpsError
from mcp_mesh_sdk.serving.tls import client_context

# What the call needs from the env file: a problem with one of these stops it.
NEEDED = frozenset(
    {"MCP_MESH_TOKEN", "MCP_MESH_TOKEN_FILE", "MCP_MESH_HOST", "MCP_MESH_PORT"}
    | {"MCP_MESH_TLS_CERT_FILE", "MCP_MESH_TLS_CA_FILE"}
)
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


@dataclass(frozen=True)
class LocalAgent:
    base_url: str
    token: Secret
    ca_file: Path | None = None  # an https:// agent is verified against it (system CAs: None)

    def call(self, method: str, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        """(status, parsed JSON) of one call; OpsError when the agent cannot be reached."""
        url = self.base_url + path  # http:// or https:// (local_agent builds it)
        request = urllib.request.Request(url, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self.token.reveal()}")
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),  # this host only: no proxy
            urllib.request.HTTPSHandler(context=client_context(url, self.ca_file)),
        )
        try:
            with opener.open(request, timeout=timeout) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            why = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
            raise OpsError(f"the agent at {self.base_url} did not answer: {why}") from None
        try:
            return status, json.loads(body)
        except ValueError:
            raise OpsError(f"the agent at {self.base_url} answered {status} without JSON") from None


def local_agent(env_file: str | Path | None = None) -> LocalAgent:
    """The agent `env_file` configures, reached on this host (loopback for a wildcard)."""
    path = Path(env_file) if env_file is not None else AGENT_ENV
    checked = check_agent_env(read_env_file(path))
    problems = [problem for problem in checked.problems if problem.variable in NEEDED]
    if problems:
        raise ConfigError(problems)
    config = checked.best_effort
    host = WILDCARDS.get(config.host, config.host)
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if config.tls.enabled else "http"
    return LocalAgent(f"{scheme}://{shown}:{config.port}", config.token, config.tls.ca_file)


def agent_reply(status: int, body: Any, env_file: str | Path | None) -> dict[str, Any]:
    """The JSON object of a 2xx answer; anything else becomes an OpsError saying why."""
    if 200 <= status < 300 and isinstance(body, dict):
        return body
    if status == 401:
        source = env_file or AGENT_ENV
        raise OpsError(
            f"the agent refused the token of {source}: is it the env file the running agent "
            "reads (--env-file)?"
        )
    reason = body.get("reason") if isinstance(body, dict) else None
    raise OpsError(f"the agent answered {status}" + (f": {reason}" if reason else ""))


def query(**values: str) -> str:
    return "?" + urllib.parse.urlencode(values)

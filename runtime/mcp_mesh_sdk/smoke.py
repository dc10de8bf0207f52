"""The smoke test of an agent before it takes traffic: its own `/mcp`, with the official client.

Run on the agent's host (by `release activate` right after the agent became ready, or by
`release smoke`), with the agent's bearer token, in this order, each check named when it fails:

1. `initialize`: the MCP handshake.
2. `tools/list`: every tool of `TOOL_NAMES` is listed with an object input schema that has the
   arguments the smoke (and every client) passes.
3. With BASE_DIRECTORY set (the file tools are enabled): `write_file` a short random UTF-8 text
   into a fresh folder `.mcp-mesh-smoke-<random>/`, `read_file` it back byte-identical, find it
   with `list_directory`, `file_info` its size, then `cleanup`: the MCP tools have no delete,
   so the folder is removed from the file system (this runs as root on the host), also when an
   earlier check failed. Names starting with `.mcp-mesh-` are the agent's own: list_directory
   hides them and backups leave them out, so clients never see the smoke's file. A write that
   timed out may still land after the cleanup: smoke folders over an hour old are removed by
   the next smoke.

The whole smoke is bounded by one timeout. The `mcp` SDK is imported only when a smoke runs
(it costs about a second), so importing this module keeps other commands fast.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_mesh_sdk.agent.paths import AGENT_OWN_PREFIX

if TYPE_CHECKING:
    from mcp.client.session import ClientSession
    from mcp.types import CallToolResult

    from mcp_mesh_sdk.config import AgentConfig
    from mcp_mesh_sdk.envreader import Secret

SMOKE_TIMEOUT = 30.0  # seconds for the whole smoke, at most
SMOKE_PREFIX = f"{AGENT_OWN_PREFIX}smoke-"  # hidden from list_directory, not backed up
STALE_SECONDS = 3600.0  # an older smoke folder is a leftover (a write that landed too late)
# The arguments the smoke passes to each tool: each must be in the tool's input schema
# (and, where the tool cannot do without it, among its required ones).
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "read_file": ("path",),
    "write_file": ("path", "content"),
    "list_directory": ("path",),
    "file_info": ("path",),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "read_file": ("path",),
    "write_file": ("path", "content"),
    "file_info": ("path",),
}


@dataclass(frozen=True)
class SmokeTarget:
    """The agent to smoke-test, as its own host reaches it."""

    mcp_url: str  # e.g. http://127.0.0.1:8080/mcp
    token: Secret
    base_directory: Path | None  # None: file tools disabled, initialize + tools/list only
    extension: str = ".txt"  # of the file written: one the agent allows
    ca_file: Path | None = None  # an https:// agent is verified against it (system CAs: None)

    @classmethod
    def of_agent(cls, config: AgentConfig, base_url: str) -> SmokeTarget:
        """The target for an agent's configuration and the base URL it answers on locally."""
        return cls(
            mcp_url=f"{base_url.rstrip('/')}/mcp",
            token=config.token,
            base_directory=config.base_directory,
            extension=sorted(config.allowed_extensions)[0],
            ca_file=config.tls.ca_file,
        )


@dataclass
class SmokeResult:
    """What the smoke found: the checks passed, in order, and the first that failed."""

    passed: bool = False
    checks: list[str] = field(default_factory=list)
    seconds: float = 0.0
    failed_check: str | None = None
    error: str | None = None

    @property
    def cause(self) -> str:
        """`<check>: <what>`, for a failure message."""
        return f"{self.failed_check}: {self.error}"

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "passed": self.passed,
            "checks": list(self.checks),
            "seconds": self.seconds,
        }
        if not self.passed:
            document |= {"failed_check": self.failed_check, "error": self.error}
        return document


SmokeRunner = Callable[[float], SmokeResult]  # the timeout in seconds -> the result


class CheckFailed(Exception):
    """A check saw a wrong answer (not an exception of the transport)."""


@dataclass
class _Run:
    target: SmokeTarget
    result: SmokeResult
    folder: str = field(default_factory=lambda: f"{SMOKE_PREFIX}{secrets.token_hex(8)}")
    check: str = "initialize"  # the check under way
    wrote: bool = False  # the folder may exist
    files_checked: bool = False  # every file check passed: cleanup is the last check
    refused: str | None = None  # the last HTTP error status seen, e.g. "HTTP 401 Unauthorized"

    @property
    def file(self) -> str:
        """The smoke file's path as the tools take it: relative to BASE_DIRECTORY."""
        return f"{self.folder}/smoke{self.target.extension}"

    def passed(self, check: str) -> None:
        self.result.checks.append(check)


def run_smoke(
    target: SmokeTarget, timeout: float = SMOKE_TIMEOUT, clock: Callable[[], float] = time.monotonic
) -> SmokeResult:
    """Smoke-test the agent at `target` within `timeout` seconds; never raises for a failure."""
    started = clock()
    run = _Run(target, SmokeResult())
    try:
        asyncio.run(_bounded(run, timeout))
    except (Exception, asyncio.CancelledError, BaseExceptionGroup) as exc:  # any failure
        run.result.failed_check = run.check
        run.result.error = _describe(exc, timeout, target.mcp_url)
        if run.refused and run.refused not in run.result.error:
            run.result.error += f" ({target.mcp_url} answered {run.refused})"
    if target.base_directory is not None:
        _clean_up(run)
        _remove_stale(target.base_directory)
    run.result.passed = run.result.failed_check is None
    run.result.seconds = round(clock() - started, 3)
    return run.result


def smoke_agent(env_file: str | Path, timeout: float = SMOKE_TIMEOUT) -> SmokeResult:
    """The smoke of the agent configured by `env_file`, on the address it answers locally."""
    from mcp_mesh_sdk.config import load_agent_config
    from mcp_mesh_sdk.envfile import read_env_file

    config = load_agent_config(read_env_file(env_file))
    url = local_url(config.host, config.port, tls=config.tls.enabled)
    return run_smoke(SmokeTarget.of_agent(config, url), timeout)


def local_url(host: str, port: int, *, tls: bool = False) -> str:
    """Where this host reaches its own service: loopback unless bound to one address;
    https:// when the service serves TLS."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


# -- the checks -------------------------------------------------------------------------------


async def _bounded(run: _Run, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        await _drive(run, timeout)


async def _drive(run: _Run, timeout: float) -> None:
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    from mcp_mesh_sdk.serving.tls import client_context

    headers = {"Authorization": f"Bearer {run.target.token.reveal()}"}
    verify = client_context(run.target.mcp_url, run.target.ca_file) or True
    # trust_env off: a proxy set for the host's package downloads must not see loopback calls
    http_client = httpx2.AsyncClient(
        headers=headers, timeout=httpx2.Timeout(timeout), trust_env=False, verify=verify
    )

    async def note_refusal(response: httpx2.Response) -> None:
        if response.status_code >= 400:
            run.refused = f"HTTP {response.status_code} {response.reason_phrase}".strip()

    http_client.event_hooks["response"].append(note_refusal)
    async with (
        http_client,
        streamable_http_client(run.target.mcp_url, http_client=http_client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        run.passed("initialize")
        run.check = "tools/list"
        await _check_tools(session)
        run.passed("tools/list")
        if run.target.base_directory is not None:
            await _check_files(run, session)
        run.check = "disconnect"  # what can still fail: closing the session


async def _check_tools(session: ClientSession) -> None:
    from mcp.types import PaginatedRequestParams

    from mcp_mesh_sdk.agent.tools import TOOL_NAMES

    listing = await session.list_tools()
    tools = list(listing.tools)
    for _ in range(100):  # pages; an agent has one
        if listing.next_cursor is None:
            break
        listing = await session.list_tools(
            params=PaginatedRequestParams(cursor=listing.next_cursor)
        )
        tools += listing.tools
    schemas = {tool.name: tool.input_schema for tool in tools}
    missing = [name for name in TOOL_NAMES if name not in schemas]
    if missing:
        raise CheckFailed(
            f"the agent does not list the tool{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (it lists {', '.join(sorted(schemas)) or 'none'})"
        )
    for name in TOOL_NAMES:
        schema = schemas[name]
        properties = schema.get("properties")
        if schema.get("type") != "object" or not isinstance(properties, dict):
            raise CheckFailed(f"{name} has no object input schema with properties")
        lacking = [argument for argument in ARGUMENTS.get(name, ()) if argument not in properties]
        required = schema.get("required") or []
        lacking += [a for a in REQUIRED.get(name, ()) if a in properties and a not in required]
        if lacking:
            raise CheckFailed(
                f"the input schema of {name} lacks (or does not require) {', '.join(lacking)}"
            )


async def _check_files(run: _Run, session: ClientSession) -> None:
    from mcp.types import TextContent

    content = f"mcp-mesh smoke {secrets.token_hex(8)}: déjà vu ✓\n"  # random, not ASCII
    size = len(content.encode("utf-8"))
    name = run.file.rsplit("/", 1)[1]

    run.check = "write_file"
    run.wrote = True  # from here on the folder may exist
    written = await _call(session, "write_file", {"path": run.file, "content": content})
    reported = _structured(written).get("bytes_written")
    if reported is not None and reported != size:
        raise CheckFailed(f"wrote {reported} bytes of {size}")
    run.passed("write_file")

    run.check = "read_file"
    read = await _call(session, "read_file", {"path": run.file})
    text = "".join(item.text for item in read.content if isinstance(item, TextContent))
    if text.encode("utf-8") != content.encode("utf-8"):
        raise CheckFailed(f"read back {text!r}, not the {content!r} written")
    run.passed("read_file")

    run.check = "list_directory"
    listed = await _call(session, "list_directory", {"path": run.folder})
    entries = _structured(listed).get("entries")
    found = [e for e in entries or [] if isinstance(e, dict) and e.get("name") == name]
    if not found or found[0].get("type") != "file" or found[0].get("size") != size:
        raise CheckFailed(
            f"{run.folder} does not list {name} as a file of {size} bytes: {entries!r}"
        )
    run.passed("list_directory")

    run.check = "file_info"
    info = _structured(await _call(session, "file_info", {"path": run.file}))
    if info.get("type") != "file" or info.get("size") != size:
        raise CheckFailed(
            f"{run.file} is a {info.get('type')} of {info.get('size')} bytes, not a file of "
            f"{size} bytes"
        )
    run.passed("file_info")
    run.files_checked = True


async def _call(session: ClientSession, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    from mcp.types import TextContent

    result = await session.call_tool(tool, arguments)
    if result.is_error:
        text = " ".join(item.text for item in result.content if isinstance(item, TextContent))
        text = text.strip().removeprefix(f"Error executing tool {tool}: ")  # the SDK's wording
        raise CheckFailed(f"{tool} answered an error: {text or '(no message)'}")
    return result


def _structured(result: CallToolResult) -> dict[str, Any]:
    content = result.structured_content
    return content if isinstance(content, dict) else {}


def _clean_up(run: _Run) -> None:
    """Remove the smoke's folder; `cleanup` passes when it existed and is gone."""
    assert run.target.base_directory is not None
    folder = Path(os.path.realpath(run.target.base_directory)) / run.folder
    problem = None
    try:
        if folder.is_symlink() or folder.is_file():
            folder.unlink()
        elif folder.is_dir():
            shutil.rmtree(folder)
        elif run.files_checked:  # the agent wrote it, but not here
            problem = f"{folder} was not found: is BASE_DIRECTORY the agent's?"
    except OSError as exc:
        problem = f"cannot remove {folder}: {exc.strerror or exc}"
    if problem is None and os.path.lexists(folder):
        problem = f"{folder} is still there"
    if run.files_checked and run.result.failed_check is None:
        if problem is None:
            run.passed("cleanup")
        else:
            run.result.failed_check, run.result.error = "cleanup", problem
    elif problem is not None and run.wrote:  # a failure already; say what was left too
        run.result.error = f"{run.result.error} (and the smoke folder: {problem})"


def _remove_stale(base_directory: Path, now: float | None = None) -> None:
    """Remove the folders of earlier smokes that are over an hour old (best effort)."""
    cutoff = (time.time() if now is None else now) - STALE_SECONDS
    try:
        with os.scandir(base_directory) as listing:
            stale = [
                Path(entry.path)
                for entry in listing
                if entry.name.startswith(SMOKE_PREFIX)
                and entry.is_dir(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_mtime < cutoff
            ]
    except OSError:
        return
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _describe(exc: BaseException, timeout: float, url: str) -> str:
    """The one line that says what went wrong (exception groups unwrapped, no token shown)."""
    import httpx2

    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    leaves = [e for e in _leaves(exc) if not isinstance(e, asyncio.CancelledError)] or [exc]
    leaf = next((e for e in leaves if isinstance(e, CheckFailed)), leaves[0])
    if isinstance(leaf, CheckFailed):
        return str(leaf)
    if isinstance(leaf, TimeoutError):
        return f"no answer within {timeout:g} s"
    text = str(leaf).strip()
    if isinstance(leaf, httpx2.TransportError):
        return f"cannot reach {url}: {text or type(leaf).__name__}"
    return f"{type(leaf).__name__}: {text}" if text else type(leaf).__name__

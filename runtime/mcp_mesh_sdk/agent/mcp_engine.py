"""The MCP side of the agent, built on the official `mcp` 2.x SDK (`MCPServer`).

Streamable HTTP, stateless, JSON responses: every POST stands alone, so a load balancer can
send each request to any agent without session affinity. Host-header (DNS rebinding)
protection stays on, with the names and addresses the agent is really reached by.

Importing the SDK takes most of a second, so `build_engine` runs in a worker thread while the
HTTP listener already answers /health and /livez (tried again if a flood of connections has
used up the file descriptors meanwhile, with the serving thread favoured for the GIL).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp_mesh_sdk import __version__
from mcp_mesh_sdk.agent.operations import InThread, OperationRunner
from mcp_mesh_sdk.agent.paths import ToolCallError
from mcp_mesh_sdk.agent.tools import INLINE_READ_BYTES, TOOL_NAMES, FileTools
from mcp_mesh_sdk.config import AgentConfig

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.types import ASGIApp

WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
logger = logging.getLogger("mcp_mesh_sdk.agent.mcp")
FQDN_LOOKUP_SECONDS = 1.0
SDK_BODY_LIMIT = 4 * 1024 * 1024  # the SDK's DEFAULT_MAX_REQUEST_BODY_SIZE
BUILD_ATTEMPTS = 5  # tries when the build runs out of file descriptors
BUILD_RETRY_SECONDS = 1.0
BUILD_SWITCH_INTERVAL = 0.0005  # seconds (Python's default: 0.005), see _serving_thread_first


@dataclass
class McpEngine:
    session_manager: StreamableHTTPSessionManager
    asgi: ASGIApp
    security_settings: TransportSecuritySettings


def reachable_names(config: AgentConfig, interface_addresses: Iterable[str] = ()) -> list[str]:
    """Host names and addresses (no ports) the agent may be called by."""
    names = {"localhost", "127.0.0.1", "::1", socket.gethostname(), config.advertise_host}
    names.add(socket.gethostname().split(".", 1)[0])
    if config.host not in WILDCARD_HOSTS:
        names.add(config.host)
    names.update(interface_addresses)
    return sorted(name.lower() for name in names if name)


def host_patterns(names: Iterable[str], extra: Iterable[str]) -> tuple[list[str], list[str]]:
    """(allowed Host values, allowed Origin values): each name with and without a port."""
    hosts: set[str] = set()
    for name in names:
        shown = f"[{name}]" if _is_ipv6(name) else name
        hosts.update({shown, f"{shown}:*"})
    for entry in extra:
        entry = entry.lower()
        has_port = (
            entry.rsplit("]", 1)[-1].count(":") == 1
            if entry.startswith("[")
            else (entry.count(":") == 1)
        )
        hosts.update({entry} if has_port else {entry, f"{entry}:*"})
    origins = {f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")}
    return sorted(hosts), sorted(origins)


def interface_addresses() -> list[str]:
    """Every address on this host's interfaces (IPv6 without its %scope).

    psutil asks the kernel over netlink; where a sandbox forbids that, the host name's
    resolved addresses stand in (MCP_MESH_ALLOWED_HOSTS can add more).
    """
    import psutil

    try:
        interfaces = psutil.net_if_addrs()
    except OSError as exc:
        logger.warning("cannot list interface addresses (%s); using the host name's", exc)
        try:
            infos = socket.getaddrinfo(socket.gethostname(), None)
        except OSError:
            return []
        return sorted({str(info[4][0]).split("%", 1)[0] for info in infos})
    found = []
    for addresses in interfaces.values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                found.append(address.address.split("%", 1)[0])
    return found


def _is_ipv6(name: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address)
    except ValueError:
        return False


def _add_fqdn_later(settings: TransportSecuritySettings) -> None:
    """Resolve the FQDN off the start-up path (DNS may be slow) and allow it when known."""

    def lookup() -> None:
        fqdn = socket.getfqdn().lower()
        if fqdn and fqdn != "localhost":
            for pattern in (fqdn, f"{fqdn}:*"):
                if pattern not in settings.allowed_hosts:
                    settings.allowed_hosts.append(pattern)
            for scheme in ("http", "https"):
                settings.allowed_origins.extend([f"{scheme}://{fqdn}", f"{scheme}://{fqdn}:*"])

    threading.Thread(target=lookup, name="fqdn-lookup", daemon=True).start()


def request_body_limit(config: AgentConfig) -> int:
    """The largest /mcp body: a write carries the whole file as JSON, so leave room for
    escaping on top of MAX_FILE_SIZE."""
    return max(SDK_BODY_LIMIT, config.max_file_size * 2 + 64 * 1024)


def _out_of_files(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def _serving_thread_first() -> Iterator[None]:
    """While this thread imports the SDK (CPU-bound, most of a second), the serving thread
    waits up to the GIL's switch interval (5 ms) to go on after each socket call: under a
    flood of connections at start-up, seconds before /ready was answered. A shorter interval
    meanwhile keeps the serving thread responsive."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(BUILD_SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def build_engine_patiently(
    config: AgentConfig, tools: FileTools, runner: OperationRunner
) -> McpEngine:
    """`build_engine`, tried again while the process is out of file descriptors (a flood
    of connections at start-up must not kill the agent while it imports the SDK)."""
    for attempt in range(1, BUILD_ATTEMPTS + 1):
        try:
            with _serving_thread_first():
                return build_engine(config, tools, runner)
        except Exception as exc:
            if attempt == BUILD_ATTEMPTS or not _out_of_files(exc):
                raise
            logger.warning("building the MCP engine: out of file descriptors; trying again")
            time.sleep(BUILD_RETRY_SECONDS)
    raise AssertionError("unreachable")


def build_engine(config: AgentConfig, tools: FileTools, runner: OperationRunner) -> McpEngine:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
    from mcp.server.transport_security import TransportSecuritySettings
    from pydantic import ValidationError

    class CountingServer(MCPServer[Any]):
        """Counts calls whose arguments the SDK rejects before our function runs (wrong or
        missing arguments): a client error, `error_type="bad_arguments"`."""

        async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
            started = time.perf_counter()
            try:
                return await super().call_tool(name, arguments, context)
            except ToolError as exc:
                if name in TOOL_NAMES and isinstance(exc.__cause__, ValidationError):
                    runner.record_rejected(name, time.perf_counter() - started, "bad_arguments")
                raise

    server = CountingServer(
        name=config.agent_name,
        version=__version__,
        instructions=(
            "File tools confined to one directory. Paths are relative to it; '..', symlinks "
            "leading out and disallowed extensions are refused."
        ),
        log_level=config.log_level,  # type: ignore[arg-type]
    )
    extensions = ", ".join(sorted(config.allowed_extensions))
    limit = f"{config.max_file_size} bytes"

    async def call(operation: str, path: str, work: Any, inline: bool = False) -> Any:
        try:
            return await runner.run(operation, path, work, inline=inline)
        except ToolCallError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(description=f"Read a UTF-8 text file (extensions {extensions}; at most {limit}).")
    async def read_file(path: str) -> str:
        def small_here() -> str | InThread[str]:
            text = tools.read_small_file(path, INLINE_READ_BYTES)
            return InThread(lambda: tools.read_file(path)) if text is None else text

        return str(await call("read_file", path, small_here, inline=True))

    @server.tool(description=f"Write a UTF-8 text file atomically (extensions {extensions}; "
                 f"at most {limit}); creates missing folders.")  # fmt: skip
    async def write_file(path: str, content: str) -> dict[str, Any]:
        result: dict[str, Any] = await call(
            "write_file", path, lambda: tools.write_file(path, content)
        )
        return result

    @server.tool(description="List a directory: name, type and size of each entry.")
    async def list_directory(path: str = ".") -> dict[str, Any]:
        result: dict[str, Any] = await call(
            "list_directory", path, lambda: tools.list_directory(path)
        )
        return result

    @server.tool(description="Size, type, modification time and permissions of a path.")
    async def file_info(path: str) -> dict[str, Any]:
        result: dict[str, Any] = await call("file_info", path, lambda: tools.file_info(path))
        return result

    hosts, origins = host_patterns(
        reachable_names(config, interface_addresses()), config.allowed_hosts
    )
    settings = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )
    _add_fqdn_later(settings)
    server.streamable_http_app(  # builds the session manager; its own routing is not used
        json_response=True,
        stateless_http=True,
        transport_security=settings,
        max_request_body_size=request_body_limit(config),
    )
    manager = server.session_manager
    return McpEngine(manager, StreamableHTTPASGIApp(manager), settings)

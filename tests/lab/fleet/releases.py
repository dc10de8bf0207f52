"""Test releases built from a copy of the project's source, the way an upgrade builds one.

`source_with_version(snapshot, folder, version)` copies a source tree (pyproject.toml, README.md,
runtime/) and changes `__version__`; the other helpers change the copy further:
`add_migration` drops one more migration module in, `break_serve` makes `serve` exit at once
(the release never becomes ready), `break_tool` makes one tool raise on every call,
`slow_tools` adds a delay to every tool call and `drop_tool` leaves a tool out of tools/list.
Each change is appended to a module of the copy, so it survives edits of the code it patches.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

PACKAGE = Path("runtime") / "mcp_mesh_sdk"


def source_with_version(snapshot: Path, folder: Path, version: str) -> Path:
    copy = folder / f"source-{version}"
    shutil.copytree(snapshot, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    init = copy / PACKAGE / "__init__.py"
    init.write_text(
        re.sub(r'__version__ = "[^"]+"', f'__version__ = "{version}"', init.read_text())
    )
    return copy


def bump_patch(version: str, by: int = 1) -> str:
    """1.0.0 -> 1.0.1 (by=1): a newer version than the session's."""
    major, minor, patch = (int(part) for part in version.split(".")[:3])
    return f"{major}.{minor}.{patch + by}"


MIGRATION_TEMPLATE = '''"""Test migration: writes a marker file into the state directory."""

from __future__ import annotations

from pathlib import Path

ID = "{id}"
DESCRIPTION = "test release: marker file {marker}"


def up(state_dir: Path) -> None:
    (state_dir / "{marker}").write_text("{id}\\n")


def down(state_dir: Path) -> None:
    (state_dir / "{marker}").unlink(missing_ok=True)
'''


def next_migration_id(source: Path) -> str:
    """An id numbered one above the highest migration the source has."""
    numbers = [
        int(match.group(1))
        for path in (source / PACKAGE / "migrations").glob("m*.py")
        if (match := re.match(r"m(\d{4})_", path.name))
    ]
    return f"{max(numbers, default=0) + 1:04d}_test_marker"


def add_migration(source: Path, marker: str) -> str:
    """Drop one migration module into the copy; returns its id. `up` writes `marker`."""
    migration_id = next_migration_id(source)
    module = source / PACKAGE / "migrations" / f"m{migration_id}.py"
    module.write_text(MIGRATION_TEMPLATE.format(id=migration_id, marker=marker))
    return migration_id


def break_serve(source: Path) -> None:
    """Make `mcp-mesh-sdk serve` of the copy exit with an error before it is ready."""
    serve = source / PACKAGE / "commands" / "serve.py"
    serve.write_text(
        serve.read_text()
        + """

def run(args: argparse.Namespace) -> int:  # noqa: F811 - the broken test release
    from mcp_mesh_sdk.errors import OpsError

    raise OpsError("broken test release: serve refuses to start")
"""
    )


def _append(source: Path, module: str, code: str) -> None:
    path = source / PACKAGE / module
    marker = "\n\n# --- changed by tests/lab/fleet/releases.py ---\n"
    path.write_text(path.read_text() + marker + code)


def break_tool(source: Path, tool: str, spare: str = "") -> None:
    """Make `tool` of the copy raise an unexpected exception on every call (a server error).

    With `spare`, calls on paths that start with it still work: a release broken in a way a
    smoke test on those paths does not see (".mcp-mesh-smoke" spares the rollout's smoke test).
    """
    _append(
        source,
        "agent/tools.py",
        f"""
_working_{tool} = FileTools.{tool}


def _broken_tool(self: FileTools, path: str, *args: Any, **kwargs: Any) -> Any:
    if {spare!r} and path.startswith({spare!r}):
        return _working_{tool}(self, path, *args, **kwargs)
    raise RuntimeError("broken test release: {tool} fails on every call")


setattr(FileTools, "{tool}", _broken_tool)
""",
    )


def slow_tools(source: Path, seconds: float) -> None:
    """Make every tool call of the copy take `seconds` longer."""
    _append(
        source,
        "agent/tools.py",
        f"""
def _slowed(method: Any) -> Any:
    import functools
    import time

    @functools.wraps(method)
    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep({seconds!r})
        return method(*args, **kwargs)

    return slow


for _name in TOOL_NAMES:
    setattr(FileTools, _name, _slowed(getattr(FileTools, _name)))
""",
    )


def drop_tool(source: Path, tool: str) -> None:
    """Leave `tool` out of the copy's MCP server: tools/list no longer lists it."""
    _append(
        source,
        "agent/mcp_engine.py",
        f"""
_build_every_tool = build_engine


def build_engine(config: AgentConfig, tools: FileTools, runner: OperationRunner) -> McpEngine:
    from mcp.server.mcpserver import MCPServer

    register = MCPServer.tool

    def tool_but_one(self: Any, *args: Any, **kwargs: Any) -> Any:
        decorator = register(self, *args, **kwargs)
        return lambda function: function if function.__name__ == "{tool}" else decorator(function)

    MCPServer.tool = tool_but_one  # type: ignore[method-assign]
    try:
        return _build_every_tool(config, tools, runner)
    finally:
        MCPServer.tool = register  # type: ignore[method-assign]
""",
    )

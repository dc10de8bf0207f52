"""A real agent removes, at start, the temporary files interrupted writes left in its data."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RunningAgent, wait_until

pytestmark = pytest.mark.integration

LEFTOVER = ".mcp-mesh-0123456789abcdef0123456789abcdef.tmp"


def left_behind(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    then = time.time() - 600
    os.utime(path, (then, then))
    return path


def test_the_agent_reaps_leftover_temporaries_at_start_and_nothing_else(
    agent_env: dict[str, str], start_agent: Callable[..., RunningAgent]
) -> None:
    data = Path(agent_env["BASE_DIRECTORY"])
    leftovers = [left_behind(data / LEFTOVER, "half a write"),
                 left_behind(data / "docs" / LEFTOVER, "another")]  # fmt: skip
    kept = [
        left_behind(data / "docs" / ".mcp-mesh-report.tmp", "a client's file"),
        left_behind(data / "docs" / "notes.txt", "a client's file"),
        left_behind(data / ".mcp-mesh-smoke-0123abcd" / "smoke.txt", "a smoke's file"),
    ]

    agent = start_agent(agent_env)

    assert wait_until(lambda: "removed 2 temporary file(s)" in agent.service.log(), timeout=10), (
        agent.service.log()
    )
    assert not any(path.exists() for path in leftovers)
    assert all(path.exists() for path in kept)

"""journald priorities on the fleet: `journalctl -p err` lists an agent's errors and nothing
below them, and each entry's MESSAGE is still the service's one JSON object."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from tests.lab.fleet.loadgen import tool_answer

BASE = "/var/lib/mcp-mesh/data"


def journal(host: Any, since: float, priority: str) -> list[dict[str, Any]]:
    out = host.check_output(
        f"journalctl --unit=mcp-mesh-sdk.service --since=@{int(since)} --priority={priority} "
        "--output=json --no-pager"
    )
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_an_agents_error_is_listed_under_err_and_info_lines_are_not(
    fleet: Any, lab_host: Any
) -> None:
    name = fleet.lab.groups["agents"][0]
    host = lab_host(name)
    probe = f"journal-probe-{uuid.uuid4().hex[:8]}.txt"
    since = time.time() - 1
    # A file the service user may not read: read_file fails with a server error, logged ERROR.
    host.check_output(f"install -m 0600 -o root -g root /dev/null {BASE}/{probe}")
    try:
        answer = tool_answer(
            fleet.agent_url(name, "/mcp"), fleet.tokens["agent"], "read_file", {"path": probe},
            fleet.ssl_context,
        )  # fmt: skip
        assert answer.answered and not answer.ok, answer.detail
        deadline = time.monotonic() + 15
        while True:
            errors = journal(host, since, "err")
            bodies = [json.loads(entry["MESSAGE"]) for entry in errors]
            if any(probe in body["message"] for body in bodies) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        host.check_output(f"rm -f {BASE}/{probe}")
    failed = [body for body in bodies if probe in body["message"]]
    assert failed and failed[0]["level"] == "ERROR", [e["MESSAGE"] for e in errors]
    assert {entry["PRIORITY"] for entry in errors} <= {"0", "1", "2", "3"}
    assert {body["level"] for body in bodies} <= {"ERROR", "CRITICAL"}
    assert not any(entry["MESSAGE"].startswith("<") for entry in errors)  # prefix stripped
    # The same window at every priority holds lines the err filter left out.
    everything = journal(host, 0, "debug")
    assert any(entry.get("PRIORITY") == "6" for entry in everything), "no INFO line at all"

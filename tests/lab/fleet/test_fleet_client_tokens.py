"""A token per client on the deployed fleet (issue 18): each agent names the client in its audit
log, and revoking a client with site.yml refuses it on every agent while the others never fail.

The clients and their tokens are extra variables of these runs only (a file beside the fleet's
secrets, mode 0600); the last step deploys again without them, as the rest of the session has it.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from loadgen import tool_call

from mcp_mesh_sdk.constants import AGENT_PORT

TOKENS = {"alice": secrets.token_hex(32), "bob": secrets.token_hex(32)}


def deploy(fleet: Any, folder: Path, names: list[str]) -> Any:
    """site.yml with `names` as mesh_agent_clients (none: the session's own set-up)."""
    args: list[str] = []
    if names:
        clients = [{"name": name, "token": TOKENS[name]} for name in names]
        path = folder / f"clients-{'-'.join(names)}.yml"
        path.write_text(yaml.safe_dump({"mesh_agent_clients": clients}))
        path.chmod(0o600)
        args = ["-e", f"@{path}"]
    done = fleet.playbook(*args)
    assert done.returncode == 0, f"{done.stdout[-5000:]}\n{done.stderr[-2000:]}"
    for token in TOKENS.values():
        assert token not in done.stdout + done.stderr
    return done


def agent_urls(fleet: Any) -> list[str]:
    hosts = fleet.lab.hosts
    return [f"http://{hosts[name]}:{AGENT_PORT}/mcp" for name in fleet.lab.groups["agents"]]


def status_of(url: str, token: str) -> str:
    ok, detail = tool_call(url, token, "list_directory", {"path": "."})
    return "ok" if ok else detail


def audit_clients(host: Any, since: float) -> set[str]:
    """The clients the agent's audit log named since `since` (epoch seconds)."""
    listed = host.run(
        f"journalctl --unit=mcp-mesh-sdk.service --since=@{int(since)} --output=json --no-pager"
    )
    named = set()
    for line in listed.stdout.splitlines():
        try:
            record = json.loads(json.loads(line).get("MESSAGE") or "null")
        except (ValueError, TypeError):
            continue
        if isinstance(record, dict) and record.get("logger") == "mcp_mesh_sdk.agent.audit":
            named.add(record.get("client"))
    return named


def test_a_revoked_client_is_refused_on_every_agent_and_the_others_never_fail(
    fleet: Any, lab_host: Any, tmp_path: Path
) -> None:
    urls = agent_urls(fleet)
    try:
        deploy(fleet, tmp_path, ["alice", "bob"])
        since = time.time() - 1
        for url in urls:
            assert status_of(url, TOKENS["alice"]) == "ok", url
            assert status_of(url, TOKENS["bob"]) == "ok", url
        for name in fleet.lab.groups["agents"]:
            assert {"alice", "bob"} <= audit_clients(lab_host(name), since), name

        stop = threading.Event()
        alice: list[tuple[str, str]] = []

        def alice_calls() -> None:  # every agent in turn, directly, about 20 calls a second
            while not stop.is_set():
                for url in urls:
                    alice.append((url, status_of(url, TOKENS["alice"])))
                    time.sleep(0.05)

        caller = threading.Thread(target=alice_calls, daemon=True)
        caller.start()
        try:
            deploy(fleet, tmp_path, ["alice"])
            time.sleep(2)  # each agent looks at its clients file once a second
        finally:
            stop.set()
            caller.join(timeout=30)
        for url in urls:
            assert status_of(url, TOKENS["bob"]) == "list_directory: HTTP 401", url
        failed = [(url, detail) for url, detail in alice if detail != "ok"]
        assert alice and failed == [], f"{len(failed)} of {len(alice)} failed: {failed[:5]}"
        assert {url for url, _ in alice} == set(urls)
    finally:
        deploy(fleet, tmp_path, [])

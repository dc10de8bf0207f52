"""A token per client on the deployed fleet (issue 18): each agent names the client in its audit
log, and revoking a client with site.yml refuses it on every agent while the others never fail.

alice and bob are two of the lab's clients (its inventory's mesh_agent_clients, the fleet's
`clients`). Revoking bob is a run with every client but bob as an extra variable (a file beside
the fleet's secrets, mode 0600); the last step deploys again without it, as the session has it.
"""

from __future__ import annotations

import datetime
import json
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from tests.lab.fleet.loadgen import tool_call

AUDIT_LOG = "/var/log/mcp-mesh/audit.log"  # the agent's MCP_MESH_AUDIT_LOG: a JSON line a call


def deploy(fleet: Any, folder: Path, without: str | None = None) -> Any:
    """site.yml with every lab client but `without` (None: the session's own set-up)."""
    args: list[str] = []
    if without:
        clients = [
            {"name": name, "token": token}
            for name, token in fleet.clients.items()
            if name != without
        ]
        path = folder / f"clients-without-{without}.yml"
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump({"mesh_agent_clients": clients}))
        args = ["-e", f"@{path}"]
    done = fleet.playbook(*args)
    assert done.returncode == 0, f"{done.stdout[-5000:]}\n{done.stderr[-2000:]}"
    output = done.stdout + done.stderr
    assert not [name for name, token in fleet.clients.items() if token in output]
    return done


def status_of(url: str, token: str, context: ssl.SSLContext | None) -> str:
    ok, detail = tool_call(url, token, "list_directory", {"path": "."}, context)
    return "ok" if ok else detail


def audit_clients(host: Any, since: float) -> set[str]:
    """The clients the agent's audit log named since `since` (epoch seconds)."""
    listed = host.run(f"tail -n 5000 {AUDIT_LOG}")
    assert listed.rc == 0, listed.stderr
    named = set()
    for line in listed.stdout.splitlines():
        try:
            record = json.loads(line)
            stamp = datetime.datetime.fromisoformat(record["timestamp"]).timestamp()
        except (ValueError, TypeError, KeyError):
            continue
        if stamp >= since:
            named.add(record.get("client"))
    return named


def test_a_revoked_client_is_refused_on_every_agent_and_the_others_never_fail(
    fleet: Any, lab_host: Any, tmp_path: Path
) -> None:
    urls = [fleet.agent_url(name, "/mcp") for name in fleet.lab.groups["agents"]]
    context = fleet.ssl_context
    alice_token, bob_token = fleet.clients["alice"], fleet.clients["bob"]
    try:
        since = time.time() - 1
        for url in urls:
            assert status_of(url, alice_token, context) == "ok", url
            assert status_of(url, bob_token, context) == "ok", url
        for name in fleet.lab.groups["agents"]:
            assert {"alice", "bob"} <= audit_clients(lab_host(name), since), name

        stop = threading.Event()
        alice: list[tuple[str, str]] = []

        def alice_calls() -> None:  # every agent in turn, directly, about 20 calls a second
            while not stop.is_set():
                for url in urls:
                    alice.append((url, status_of(url, alice_token, context)))
                    time.sleep(0.05)

        caller = threading.Thread(target=alice_calls, daemon=True)
        caller.start()
        try:
            deploy(fleet, tmp_path, without="bob")
            time.sleep(2)  # each agent looks at its clients file once a second
        finally:
            stop.set()
            caller.join(timeout=30)
        for url in urls:
            assert status_of(url, bob_token, context) == "list_directory: HTTP 401", url
        failed = [(url, detail) for url, detail in alice if detail != "ok"]
        assert alice and failed == [], f"{len(failed)} of {len(alice)} failed: {failed[:5]}"
        assert {url for url, _ in alice} == set(urls)
    finally:
        deploy(fleet, tmp_path)

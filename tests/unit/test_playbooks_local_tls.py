"""Every on-host HTTP check in the playbooks reaches the local agent or registry the one way
mesh_common defines (mesh_common_local_url and mesh_common_local_ca_path): https at the host's own
address, verified against the mesh's CA, when TLS is on. A check written with a literal
http://127.0.0.1 would get no answer from a TLS-only listener and report a healthy host as down.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def tasks_in(node: Any) -> Iterator[dict[str, Any]]:
    """Every task of a playbook or task file, inside plays and blocks too."""
    if isinstance(node, list):
        for item in node:
            yield from tasks_in(item)
    elif isinstance(node, dict):
        yield node
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            yield from tasks_in(node.get(key))


def uri_calls() -> list[tuple[str, dict[str, Any]]]:
    calls = []
    for path in sorted(PLAYBOOKS.rglob("*.yml")):
        for task in tasks_in(yaml.safe_load(path.read_text(encoding="utf-8"))):
            module = task.get("ansible.builtin.uri") or task.get("uri")
            if module is not None:
                url = str(module["url"]).strip()
                # verify.yml asks registry replicas where the agents do, at the load balancer's
                # registry frontend: the mesh_registry_url filter (https where TLS is on,
                # test_playbook_filters.py), and the local URL with one registry.
                frontend = str((task.get("vars") or {}).get("_mesh_verify_registry_url", ""))
                if url.startswith("{{ _mesh_verify_registry_url | trim }}/") and all(
                    part in frontend for part in ("mesh_registry_url(", "mesh_common_local_url ~")
                ):
                    module = {**module, "url": "{{ mesh_common_local_url }}:" + url}
                calls.append((f"{path.relative_to(PLAYBOOKS)}: {task.get('name')}", module))
    return calls


def test_every_local_http_check_follows_the_tls_setting() -> None:
    calls = uri_calls()
    assert len(calls) >= 7  # verify (2), upgrade (2), diagnostics (2), fleet_status (1)
    wrong = [
        where
        for where, module in calls
        if not str(module["url"]).strip().startswith("{{ mesh_common_local_url }}:")
        or module.get("ca_path") != "{{ mesh_common_local_ca_path }}"
    ]
    assert wrong == []


def test_no_playbook_spells_out_a_plain_local_url() -> None:
    found = [
        f"{path.relative_to(PLAYBOOKS)}:{number}"
        for path in sorted(PLAYBOOKS.rglob("*"))
        if path.suffix in (".yml", ".py", ".j2")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if "http://127.0.0.1" in line or "http://localhost" in line
    ]
    assert found == []

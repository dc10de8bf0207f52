"""Reshape incidents.jsonl from the spec's record to the one `IncidentStore` reads.

Spec record: components_affected, actions_taken (strings or {"timestamp", "action"}),
assigned_to, no cause. Current record: components, actions (strings), cause, resolved_at.
The cause is derived from the spec's titles, so the detector does not open a duplicate of an
incident that is already open. Lines that are not JSON objects are kept as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.atomicfile import atomic_write_text

ID = "0001_incident_fields"
DESCRIPTION = "incidents.jsonl: spec fields (components_affected, actions_taken) -> current"

FILE = "incidents.jsonl"
_TITLE_CAUSES = {
    "High Error Rate: ": "error_rate:",
    "Slow Response Time: ": "response_time:",
}


def _cause(record: dict[str, Any]) -> str:
    title = str(record.get("title", ""))
    for prefix, cause in _TITLE_CAUSES.items():
        if title.startswith(prefix):
            return cause + title.removeprefix(prefix)
    if title == "High Memory Usage":
        return "memory"
    if title == "High Disk Usage":
        return "disk"
    return f"legacy:{record.get('id', '')}"


def _action_text(action: Any) -> str:
    if isinstance(action, dict):
        stamp = action.get("timestamp")
        return f"{stamp} {action.get('action', '')}".strip() if stamp else str(action.get("action"))
    return str(action)


def _upgrade(record: dict[str, Any]) -> dict[str, Any]:
    if "cause" in record:
        return record  # already current
    new = {k: v for k, v in record.items() if k not in ("components_affected", "actions_taken")}
    new["components"] = list(record.get("components_affected", record.get("components", [])))
    new["actions"] = [_action_text(a) for a in record.get("actions_taken", [])]
    new["cause"] = _cause(record)
    new.setdefault("status", "open")
    new.setdefault("resolution", "")
    new.setdefault("resolved_at", None)
    new.pop("assigned_to", None)
    return new


def _downgrade(record: dict[str, Any]) -> dict[str, Any]:
    if "cause" not in record:
        return record  # already the spec's shape
    old = {k: v for k, v in record.items() if k not in ("components", "actions", "cause")}
    old["components_affected"] = list(record.get("components", []))
    old["actions_taken"] = list(record.get("actions", []))
    old.setdefault("assigned_to", "on-call-engineer")
    return old


def _rewrite(state_dir: Path, change: Any) -> None:
    path = state_dir / FILE
    if not path.exists():
        return
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            lines.append(line)
            continue
        lines.append(json.dumps(change(record)) if isinstance(record, dict) else line)
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def up(state_dir: Path) -> None:
    _rewrite(state_dir, _upgrade)


def down(state_dir: Path) -> None:
    _rewrite(state_dir, _downgrade)

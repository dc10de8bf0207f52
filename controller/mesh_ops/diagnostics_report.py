"""Turn what playbooks/diagnostics.yml gathered into a fleet report (JSON and Markdown).

The playbook writes one JSON document, `{"generated_at": ISO, "hosts": {HOST: RAW | null}}`,
where RAW holds each host's registered results as Ansible gave them (null or {}: the host did not
answer over SSH):

    {"diagnose": {"rc", "stdout", "stderr"},        # mcp-mesh-sdk diagnose --json
     "incidents": {"rc", "stdout", "stderr"},       # mcp-mesh-sdk incidents --json --open
     "service": {"ActiveState", "SubState", "NRestarts", ...},   # systemd_service .status
     "journal": ["<journalctl -o json line>", ...], # last errors of the service
     "health": {"status": 200, "json": {...}},      # GET /health/detailed
     "ready": {"status": 200}}                      # GET /ready

`python -m mesh_ops.diagnostics_report GATHERED OUTDIR [IGNORE]` writes
`OUTDIR/diagnostics-<time>.json` and `.md` and prints `{"json", "markdown", "hosts_with_issues"}`.
IGNORE is a JSON list of regular expressions: matching issues are shown but do not count
(e.g. `["^High CPU usage"]` on hosts that share a busy machine).
Only JSON is consumed; text output of any command is never parsed.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.constants import AGENT_UNIT

JOURNAL_MESSAGE_CHARS = 300


def command_json(result: dict[str, Any] | None) -> tuple[Any, str | None]:
    """(parsed stdout, None) or (None, why it could not be read) for a command's result as
    Ansible registers it ({"rc", "stdout", "stderr"})."""
    if not result:
        return None, "not run"
    try:
        return json.loads(result.get("stdout") or ""), None
    except ValueError:
        detail = (result.get("stderr") or result.get("msg") or "no output").strip()
        return None, f"exit {result.get('rc')}: {detail[-200:]}"


def _journal_errors(lines: list[str]) -> list[dict[str, str]]:
    errors = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        micros = entry.get("__REALTIME_TIMESTAMP")
        when = (
            datetime.fromtimestamp(int(micros) / 1e6, UTC).isoformat(timespec="seconds")
            if isinstance(micros, str) and micros.isdigit()
            else ""
        )
        message = entry.get("MESSAGE")
        if isinstance(message, list):  # journald gives non-UTF-8 messages as byte lists
            message = bytes(message).decode("utf-8", "replace")
        errors.append({"time": when, "message": str(message)[:JOURNAL_MESSAGE_CHARS]})
    return errors


def summarize_host(name: str, raw: dict[str, Any] | None) -> dict[str, Any]:
    """One host's row of the report, with every issue found in what was gathered."""
    if not raw:
        return {
            "host": name,
            "reachable": False,
            "version": None,
            "state": "unreachable",
            "restarts": None,
            "ready": False,
            "cpu_percent": None,
            "memory_percent": None,
            "disk_percent": None,
            "issues": ["host did not answer over SSH"],
            "incidents": [],
            "journal_errors": [],
        }
    issues: list[str] = []
    diagnose, why = command_json(raw.get("diagnose"))
    if not isinstance(diagnose, dict):
        issues.append(f"mcp-mesh-sdk diagnose did not report ({why})")
        diagnose = {}
    issues += [str(issue) for issue in diagnose.get("issues", [])]

    service = raw.get("service") or {}
    state = str(service.get("ActiveState") or "unknown")
    if state != "active":
        issues.append(f"{AGENT_UNIT} is {state} ({service.get('SubState', 'unknown')})")
    restarts_text = str(service.get("NRestarts", ""))
    restarts = int(restarts_text) if restarts_text.isdigit() else None
    if restarts:
        issues.append(f"systemd restarted {AGENT_UNIT} {restarts} time(s) after failures")

    found, why = command_json(raw.get("incidents"))
    incidents = found.get("incidents", []) if isinstance(found, dict) else []
    if not isinstance(found, dict):
        issues.append(f"mcp-mesh-sdk incidents did not report ({why})")
    issues += [f"open incident {i['id']} ({i['severity']}): {i['title']}" for i in incidents]

    health = raw.get("health") or {}
    detailed = health.get("json") if isinstance(health.get("json"), dict) else {}
    system = diagnose.get("system") or {}
    disks = [d.get("usage_percent", 0.0) for d in diagnose.get("disks", [])]
    return {
        "host": name,
        "reachable": True,
        "version": detailed.get("version"),
        "state": state,
        "restarts": restarts,
        "ready": str((raw.get("ready") or {}).get("status")) == "200",
        "cpu_percent": system.get("cpu_percent"),
        "memory_percent": system.get("memory_percent"),
        "disk_percent": max(disks) if disks else None,
        "health_status": detailed.get("status"),
        "issues": issues,
        "incidents": incidents,
        "journal_errors": _journal_errors(raw.get("journal") or []),
        "diagnose": diagnose,
    }


def build_report(gathered: dict[str, Any], ignore: list[str] | None = None) -> dict[str, Any]:
    """The report; issues matching an `ignore` regular expression are listed but do not count."""
    patterns = [re.compile(pattern) for pattern in ignore or []]
    hosts = [summarize_host(name, raw) for name, raw in gathered["hosts"].items()]
    for host in hosts:
        host["ignored_issues"] = [i for i in host["issues"] if any(p.search(i) for p in patterns)]
        host["issues"] = [i for i in host["issues"] if i not in host["ignored_issues"]]
    return {
        "generated_at": gathered["generated_at"],
        "hosts_with_issues": [h["host"] for h in hosts if h["issues"]],
        "hosts": hosts,
    }


def _cell(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value}{suffix}".replace("|", "\\|")


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Fleet diagnostics {report['generated_at']}",
        "",
        f"{len(report['hosts'])} host(s), {len(report['hosts_with_issues'])} with issues.",
        "",
        "| host | version | state | ready | CPU | memory | disk | issues |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for host in report["hosts"]:
        cells = [
            host["host"],
            _cell(host["version"]),
            host["state"],
            _cell(host["ready"]),
            _cell(host["cpu_percent"], "%"),
            _cell(host["memory_percent"], "%"),
            _cell(host["disk_percent"], "%"),
            str(len(host["issues"])),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for host in report["hosts"]:
        if not host["issues"]:
            continue
        lines += ["", f"## {host['host']}", "", "Issues:", ""]
        lines += [f"- {issue}" for issue in host["issues"]]
        lines += [f"- (ignored) {issue}" for issue in host.get("ignored_issues", [])]
        if host["restarts"] is not None:
            lines += ["", f"Restarts after failures (NRestarts): {host['restarts']}"]
        if host["journal_errors"]:
            lines += ["", "Last errors in the journal:", "", "```"]
            lines += [f"{e['time']} {e['message']}" for e in host["journal_errors"]]
            lines += ["```"]
    return "\n".join(lines) + "\n"


def write_report(
    gathered: dict[str, Any], folder: Path, ignore: list[str] | None = None
) -> dict[str, Any]:
    """Write diagnostics-<time>.json and .md into `folder`; return their paths and the verdict."""
    report = build_report(gathered, ignore)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = folder / f"diagnostics-{stamp}.json"
    markdown_path = folder / f"diagnostics-{stamp}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(report), encoding="utf-8")
    return {
        "json": str(json_path),
        "markdown": str(markdown_path),
        "hosts_with_issues": report["hosts_with_issues"],
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print(
            "usage: python -m mesh_ops.diagnostics_report GATHERED.json OUTDIR [IGNORE_JSON_LIST]",
            file=sys.stderr,
        )
        return 2
    try:
        gathered = json.loads(Path(args[0]).read_text(encoding="utf-8"))
        ignore = json.loads(args[2]) if len(args) == 3 else []
        if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
            raise ValueError("the ignore list must be a JSON list of regular expressions")
        result = write_report(gathered, Path(args[1]), ignore)
    except (OSError, ValueError, KeyError, TypeError, re.error) as exc:
        print(f"diagnostics report: cannot render {args[0]}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

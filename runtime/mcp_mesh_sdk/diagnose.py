"""The spec's SystemDiagnostics for one host, as JSON for the playbooks.

`mcp-mesh-sdk diagnose --json` prints one object (exit 0: healthy, 1: issues, 2: could not run):

    {
      "overall_status": "healthy" | "unhealthy",
      "status": "healthy" | "issues",
      "timestamp": "2026-01-01T00:00:00Z",
      "host": "agent-1",
      "env_file": "/etc/mcp-mesh/agent.env" | null,
      "thresholds": {"cpu_percent": 80, "memory_percent": 90, "disk_percent": 85},
      "system": {"cpu_percent": 3.1, "memory_percent": 41.0, "available_memory_mb": 1234.5,
                 "disk_usage_percent": 22.0, "load_average": [0.1, 0.2, 0.3], "cpu_count": 2,
                 "issues": ["High CPU usage: 93.0%"]},
      "disks": [{"paths": ["/", "/var/lib/mcp-mesh"], "usage_percent": 22.0,
                 "free_gb": 80.1, "total_gb": 252.0}],
      "paths": [{"path": "/tmp", "role": "critical", "exists": true, "readable": true,
                 "writable": true, "ok": true}],
      "agent": {"url": "http://127.0.0.1:8080/health/detailed", "running": true,
                "status_code": 200, "status": "healthy", "detailed": {...}}
               | {"url": "...", "running": false, "error": "connection refused"},
      "certificates": [{"path": "/etc/mcp-mesh/tls/server.pem", "subject": "CN=agent-1",
                        "not_after": "2027-01-01T00:00:00Z", "days_left": 31.5,
                        "severity": null | "P3_Medium" | "P2_High" | "P1_Critical"}
                       | {"path": "...", "error": "cannot read ..."}],
      "issues": ["High CPU usage: 93.0%", "Cannot access critical path: /var/log"]
    }

`overall_status`, `system.cpu_percent`, `system.memory_percent`, `system.disk_usage_percent`,
`system.load_average`, `system.issues` and `issues` are the spec's `comprehensive_health_check`
fields, so tools written against the document read this report too: `overall_status` is
"unhealthy" exactly when `issues` is not empty (`status` says the same as "issues"), and
`system.issues` holds the CPU, memory and disk issues among them.

`certificates` covers the agent's MCP_MESH_TLS_CERT_FILE, every `--certificate` (e.g. the
load balancer's PEM) and every `--served-certificate HOST:PORT` (what the load balancer or the
registry serves, read as their clients see it): one expiring within 14 days is an issue led by
its severity, P3, within 3 days P2, expired P1 (`certificates.expiry_severity`), naming the file
and the date. With TLS
on, the agent is asked over https://, verified against MCP_MESH_TLS_CA_FILE.

`disks` has one entry per filesystem holding `/`, the state directory or BASE_DIRECTORY (a path
not created yet is measured at its nearest existing parent). Each `usage_percent` is what `df`
shows: used / (used + available), so the blocks ext4 reserves for root count as used (the
spec's used / total would show a disk that refuses the agent's writes as 95 % full).
`system.disk_usage_percent` is the highest of them: the spec measures only `/`, but on these
hosts the state and data directories usually sit on their own disk, and the disk that fills
first is the one that stops the agent. Roles in `paths`: `critical` (the
spec's /tmp and /var/log), `state`, `data`. A stopped agent is an issue only when this host has
an agent env file.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from mcp_mesh_sdk.serving.tls import TlsError, TlsSettings, client_context

CPU_THRESHOLD_PERCENT = 80.0
MEMORY_THRESHOLD_PERCENT = 90.0
DISK_THRESHOLD_PERCENT = 85.0
CRITICAL_PATHS = (Path("/tmp"), Path("/var/log"))


class Probe(Protocol):
    """Where the numbers come from; tests pass a fake."""

    def cpu_percent(self) -> float: ...
    def memory(self) -> tuple[float, float]: ...  # (percent used, available MB)
    def disk(self, path: Path) -> tuple[float, float, float]: ...  # (percent, free GB, total GB)
    def load_average(self) -> list[float]: ...


@dataclass
class PsutilProbe:
    cpu_interval: float = 1.0

    def cpu_percent(self) -> float:
        import psutil

        return float(psutil.cpu_percent(interval=self.cpu_interval))

    def memory(self) -> tuple[float, float]:
        import psutil

        memory = psutil.virtual_memory()
        return float(memory.percent), memory.available / 1024 / 1024

    def disk(self, path: Path) -> tuple[float, float, float]:
        import psutil

        usage = psutil.disk_usage(str(path))
        # psutil's percent is df's: used / (used + available to unprivileged users).
        return float(usage.percent), usage.free / 1024**3, usage.total / 1024**3

    def load_average(self) -> list[float]:
        return [round(value, 2) for value in os.getloadavg()]


def existing_ancestor(path: Path) -> Path:
    """`path` itself, or the nearest parent that exists (what a disk check can measure)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def path_access(path: Path, role: str) -> dict[str, Any]:
    exists = path.is_dir()
    readable = exists and os.access(path, os.R_OK | os.X_OK)
    writable = exists and os.access(path, os.W_OK | os.X_OK)
    return {
        "path": str(path),
        "role": role,
        "exists": exists,
        "readable": readable,
        "writable": writable,
        "ok": exists and readable and writable,
    }


def agent_health(port: int, timeout: float = 2.0, tls: TlsSettings | None = None) -> dict[str, Any]:
    """The local agent's /health/detailed; a stopped agent is reported, never raised."""
    scheme = "https" if tls is not None and tls.enabled else "http"
    url = f"{scheme}://127.0.0.1:{port}/health/detailed"
    report: dict[str, Any] = {"url": url, "running": False}
    try:
        context = client_context(url, tls.ca_file if tls is not None else None)
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310
            code, body = response.status, response.read()
    except urllib.error.HTTPError as exc:  # it answered: running, but not healthy
        code, body = exc.code, exc.read()
    except TlsError as exc:
        report["error"] = str(exc)
        return report
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        report["error"] = str(reason.strerror if isinstance(reason, OSError) else reason)
        return report
    report.update(running=True, status_code=code)
    try:
        detailed = json.loads(body)
    except ValueError:
        report["error"] = "answer is not JSON"
        return report
    report["detailed"] = detailed
    if isinstance(detailed, dict):
        report["status"] = detailed.get("status")
    return report


def diagnose(
    state_dir: Path,
    base_directory: Path | None,
    agent_port: int | None,
    agent_expected: bool,
    probe: Probe | None = None,
    env_file: Path | None = None,
    agent_tls: TlsSettings | None = None,
    certificates: Sequence[Path] = (),
    served_certificates: Sequence[str] = (),
) -> dict[str, Any]:
    """Everything `diagnose --json` prints (see the module docstring)."""
    probe = probe or PsutilProbe()
    issues: list[str] = []
    cpu = probe.cpu_percent()
    memory_percent, available_mb = probe.memory()
    system: dict[str, Any] = {
        "cpu_percent": round(cpu, 1),
        "memory_percent": round(memory_percent, 1),
        "available_memory_mb": round(available_mb, 1),
        "load_average": probe.load_average(),
        "cpu_count": os.cpu_count() or 1,
    }
    system_issues: list[str] = []
    if cpu > CPU_THRESHOLD_PERCENT:
        system_issues.append(f"High CPU usage: {cpu:.1f}%")
    if memory_percent > MEMORY_THRESHOLD_PERCENT:
        system_issues.append(f"High memory usage: {memory_percent:.1f}%")

    watched = [Path("/"), state_dir] + ([base_directory] if base_directory else [])
    by_device: dict[int, list[Path]] = {}
    for path in watched:
        measured = existing_ancestor(path)
        by_device.setdefault(measured.stat().st_dev, []).append(path)
    disks: list[dict[str, Any]] = []
    for paths in by_device.values():
        percent, free_gb, total_gb = probe.disk(existing_ancestor(paths[-1]))
        names = sorted({str(p) for p in paths})
        disks.append(
            {
                "paths": names,
                "usage_percent": round(percent, 1),
                "free_gb": round(free_gb, 2),
                "total_gb": round(total_gb, 2),
            }
        )
        if percent > DISK_THRESHOLD_PERCENT:
            system_issues.append(
                f"High disk usage: {percent:.1f}% on the disk holding {', '.join(names)}"
            )
    system["disk_usage_percent"] = max(disk["usage_percent"] for disk in disks)
    system["issues"] = system_issues
    issues += system_issues

    checked = [path_access(p, "critical") for p in CRITICAL_PATHS]
    checked.append(path_access(state_dir, "state"))
    if base_directory:
        checked.append(path_access(base_directory, "data"))
    issues += [f"Cannot access {c['role']} path: {c['path']}" for c in checked if not c["ok"]]

    agent: dict[str, Any] | None = None
    if agent_port is not None:
        agent = agent_health(agent_port, tls=agent_tls)
        if not agent["running"]:
            if agent_expected:
                issues.append(f"Agent not running on port {agent_port}: {agent.get('error')}")
        elif agent.get("status") != "healthy":
            issues.append(f"Agent reports status {agent.get('status')!r} ({agent['url']})")

    watched_certificates = list(certificates)
    if agent_tls is not None and agent_tls.cert_file is not None:
        watched_certificates.insert(0, agent_tls.cert_file)
    expiries, certificate_issues = certificate_findings(watched_certificates, served_certificates)
    issues += certificate_issues

    return {
        "overall_status": "unhealthy" if issues else "healthy",
        "status": "issues" if issues else "healthy",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "host": socket.gethostname(),
        "env_file": str(env_file) if env_file else None,
        "thresholds": {
            "cpu_percent": CPU_THRESHOLD_PERCENT,
            "memory_percent": MEMORY_THRESHOLD_PERCENT,
            "disk_percent": DISK_THRESHOLD_PERCENT,
        },
        "system": system,
        "disks": disks,
        "paths": checked,
        "agent": agent,
        "certificates": expiries,
        "issues": issues,
    }


def certificate_findings(
    paths: Sequence[Path], endpoints: Sequence[str] = ()
) -> tuple[list[dict[str, Any]], list[str]]:
    """(the `certificates` entries, the issues among them) for each certificate file and each
    served certificate (HOST:PORT) once."""
    from mcp_mesh_sdk.certificates import (
        CertificateError,
        Expiry,
        read_expiry,
        read_served_expiry,
    )

    readers: list[tuple[str, Callable[[], Expiry]]] = [
        *((str(path), lambda path=path: read_expiry(path)) for path in dict.fromkeys(paths)),
        *(
            (f"served by {end}", lambda end=end: read_served_expiry(end))
            for end in dict.fromkeys(endpoints)
        ),
    ]
    entries: list[dict[str, Any]] = []
    issues: list[str] = []
    for path, read in readers:
        try:
            expiry = read()
        except CertificateError as exc:
            entries.append({"path": str(path), "error": str(exc)})
            issues.append(f"Cannot read certificate: {exc}")
            continue
        entries.append(expiry.to_json())
        finding = expiry.finding()
        if finding is not None:
            issues.append(finding)
    return entries, issues

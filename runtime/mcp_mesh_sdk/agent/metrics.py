"""The agent's Prometheus metrics, on a private CollectorRegistry (nothing global).

`render_text()` is the Prometheus exposition; `render_json()` is the spec's JSON shape
(counters, gauges, histograms) plus `operations` (performance stats) and `system`, which is
what an incident detector reads.

Tool calls: `mcp_mesh_agent_operations_total{operation,outcome}` with outcome exactly one of
`ok`, `client_error`, `server_error` (see `paths.Outcome`; every tool starts with all three at
0), `mcp_mesh_agent_operation_errors_total{operation,error_type}` with the finer kind of each
error, and `mcp_mesh_agent_operation_duration_seconds{operation}` for every outcome.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PREFIX = "mcp_mesh_agent"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class AgentMetrics:
    def __init__(self, agent_name: str, version: str) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        ProcessCollector(registry=reg)
        self.info = Gauge(
            f"{PREFIX}_info",
            "Agent build and identity (value 1)",
            ["version", "agent_name"],
            registry=reg,
        )
        self.info.labels(version=version, agent_name=agent_name).set(1)
        self.start_time = Gauge(
            f"{PREFIX}_start_time_seconds", "Unix time the agent started", registry=reg
        )
        self.start_time.set(time.time())
        self.http_requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=reg,
        )
        self.http_latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.operations = Counter(
            f"{PREFIX}_operations",
            "Tool operations run, by outcome: ok, client_error, server_error",
            ["operation", "outcome"],
            registry=reg,
        )
        self.operation_errors = Counter(
            f"{PREFIX}_operation_errors",
            "Tool operations that did not succeed, by finer kind (refused, not_found, io_error...)",
            ["operation", "error_type"],
            registry=reg,
        )
        self.operation_latency = Histogram(
            f"{PREFIX}_operation_duration_seconds",
            "Tool operation latency",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.operations_in_progress = Gauge(
            f"{PREFIX}_operations_in_progress", "Tool operations running now", ["operation"],
            registry=reg,
        )  # fmt: skip
        self.security_events = Counter(
            f"{PREFIX}_security_events", "Security events recorded", ["event_type"], registry=reg
        )
        self.blocked_sources = Gauge(
            f"{PREFIX}_blocked_sources", "Source addresses blocked right now", registry=reg
        )
        self.alerts = Counter(
            f"{PREFIX}_alerts",
            "Performance alerts raised",
            ["alert", "severity", "operation"],
            registry=reg,
        )
        self.ready = Gauge(f"{PREFIX}_ready", "1 when /ready answers 200", registry=reg)
        self.draining = Gauge(f"{PREFIX}_draining", "1 while shutting down", registry=reg)
        self.registered = Gauge(
            f"{PREFIX}_registry_registered", "1 while the registry knows this agent", registry=reg
        )
        self.registry_failures = Counter(
            f"{PREFIX}_registry_failures", "Registry calls that failed", ["call"], registry=reg
        )
        self.in_flight = Gauge(
            f"{PREFIX}_requests_in_flight", "HTTP requests being served", registry=reg
        )
        self.backup_last_success = Gauge(
            f"{PREFIX}_backup_last_success_timestamp_seconds",
            "Unix time the newest archive in the backup directory was made (0: none)",
            registry=reg,
        )
        self.tls_certificate_expiry = Gauge(
            f"{PREFIX}_tls_certificate_expiry_timestamp_seconds",
            "Unix time the certificate the agent serves expires (0: plain HTTP or unreadable)",
            registry=reg,
        )
        self.system = Gauge(f"{PREFIX}_system", "Host figures from the last system sample",
                            ["figure"], registry=reg)  # fmt: skip

    def render_text(self) -> bytes:
        return bytes(generate_latest(self.registry))

    def render_json(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The spec's shape: `counters`, `gauges` keyed `name{label=value,...}`, `histograms`.

        `histograms` (recent samples) and the rest come from `extra`; `histogram_totals` holds
        each Prometheus histogram's count and sum.
        """
        counters: dict[str, float] = {}
        gauges: dict[str, float] = {}
        totals: dict[str, dict[str, float]] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                key = _key(sample.name, sample.labels)
                if family.type == "counter" and sample.name.endswith("_total"):
                    counters[key] = sample.value
                elif family.type == "gauge":
                    gauges[key] = sample.value
                elif family.type == "histogram" and sample.name.endswith(("_sum", "_count")):
                    base = _key(family.name, sample.labels)
                    kind = "sum" if sample.name.endswith("_sum") else "count"
                    totals.setdefault(base, {})[kind] = sample.value
        shown: dict[str, Any] = {
            "counters": counters,
            "gauges": gauges,
            "histograms": {},
            "histogram_totals": totals,
        }
        shown.update(extra or {})
        return shown


def _key(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"

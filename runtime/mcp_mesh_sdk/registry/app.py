"""The registry's HTTP API (Starlette). Every call but the probes needs the shared bearer token.

- `POST /agents/register` `{"name","host","port","version","capabilities"}` -> `{"agent": {...}}`
- `POST /agents/{name}/heartbeat` -> `{"agent": {...}}`, 404 for an unknown agent
- `DELETE /agents/{name}` -> `{"deleted": name}`, 404 for an unknown agent
- `GET /agents?status=&name=&version=` -> `{"agents": [...]}`
- `GET /metrics`
- `GET /health`, `GET /ready`: open (probes)

The three writes carry the agent's own key too (`X-Mesh-Agent-Key`): the first registration
with a key binds the name to it, and from then on a write of that name without that key is
refused (409 for a registration, 403 otherwise) and the entry is left as it was. So the shared
token lets a host join the mesh but not take over another agent's entry (registry/store.py).

Bodies are limited to MAX_BODY bytes: a larger Content-Length gets 413 before anything is
read, and a chunked body is cut off with 413 as soon as it passes the limit. A body that is
not JSON (or nests too deep to parse) gets 400; a registration with bad fields gets 422.

When the database cannot answer, every call that needs it gets 503 with
`{"error": "registry database unavailable", "reason": ...}` and a Retry-After, /ready says
not ready, and both recover on their own once the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

from mcp_mesh_sdk import __version__
from mcp_mesh_sdk.certificate_expiry import certificate_expiry
from mcp_mesh_sdk.constants import AGENT_KEY_HEADER
from mcp_mesh_sdk.envreader import is_host_name_or_address
from mcp_mesh_sdk.registry.config import RegistryConfig
from mcp_mesh_sdk.registry.store import STATUSES, NotYours, RegistryStore, StoreUnavailable
from mcp_mesh_sdk.serving.bearer import BearerCheck
from mcp_mesh_sdk.serving.middleware import RequestMetrics

log = logging.getLogger("mcp_mesh_sdk.registry")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32,256}$")
MAX_BODY = 64 * 1024
RETRY_AFTER = 5  # seconds, the Retry-After of a 503 while the database is away
UNAVAILABLE_LOG_EVERY = 10.0  # seconds between two warnings of the same outage


class BadRequest(Exception):
    """The request is not what the API takes; the message says what is wrong."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def _registration(body: Any) -> tuple[str, str, int, str, list[str]]:
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    name, host, port = body.get("name"), body.get("host"), body.get("port")
    version, capabilities = body.get("version", ""), body.get("capabilities", [])
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise BadRequest("name must be 1-128 letters, digits, '.', '_' or '-'")
    if not isinstance(host, str) or not is_host_name_or_address(host.strip()):
        raise BadRequest("host must be a host name or an IP address")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise BadRequest("port must be an integer from 1 to 65535")
    if not isinstance(version, str) or len(version) > 64:
        raise BadRequest("version must be a string")
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        raise BadRequest("capabilities must be a list of strings")
    return name, host.strip(), port, version, capabilities


def _agent_key(request: Request) -> str | None:
    """The agent key the call presents, None when it presents none."""
    key = request.headers.get(AGENT_KEY_HEADER)
    if key is None:
        return None
    if not KEY_PATTERN.match(key):  # the value is never echoed
        raise BadRequest(f"{AGENT_KEY_HEADER} must be 32-256 letters, digits, '-' or '_'", 400)
    return key


async def _read_body(request: Request) -> bytes:
    """The body, refused with 413 by its Content-Length before it is read, or as soon as a
    body without one (chunked) passes MAX_BODY."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Content-Length must be a number of bytes", 400)
        if int(declared) > MAX_BODY:
            raise BadRequest(f"body too large: at most {MAX_BODY} bytes", 413)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise BadRequest(f"body too large: at most {MAX_BODY} bytes", 413)
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise BadRequest("the client went away before the body was complete", 400) from exc
    return b"".join(chunks)


async def _read_json(request: Request) -> Any:
    body = await _read_body(request)
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise BadRequest("body is not valid JSON", 400) from exc


class AgentsCollector:
    """Prometheus gauge of agents by status and version, read from the store at scrape time."""

    def __init__(self, store: RegistryStore) -> None:
        self.store = store

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "mcp_mesh_registry_database_up", "1 when the registry's database answers"
        )
        try:
            agents = self.store.list()
        except StoreUnavailable:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        gauge = GaugeMetricFamily(
            "mcp_mesh_registry_agents", "Agents known to the registry", labels=["status", "version"]
        )
        by_status = GaugeMetricFamily(
            "mcp_mesh_registry_agents_by_status", "Agents by status", labels=["status"]
        )
        counts: dict[tuple[str, str], int] = {}
        for agent in agents:
            key = (agent.status, agent.version)
            counts[key] = counts.get(key, 0) + 1
        for (status, version), count in sorted(counts.items()):
            gauge.add_metric([status, version], count)
        for status in STATUSES:  # always present, so alert rules need no absent()
            by_status.add_metric([status], sum(n for k, n in counts.items() if k[0] == status))
        # One series per member, labelled like the agent's own mcp_mesh_agent_info: an alert
        # rule matches the agents Prometheus scrapes against the ones the registry lists.
        members = GaugeMetricFamily(
            "mcp_mesh_registry_agent",
            "Agents known to the registry, one series each (value 1)",
            labels=["agent_name", "status"],
        )
        for agent in sorted(agents, key=lambda agent: agent.name):
            members.add_metric([agent.name, agent.status], 1)
        yield by_status
        yield gauge
        yield members


class CertificateCollector:
    """When the certificate the registry serves expires, read at scrape time (a renewal
    replaces the file); 0 without TLS or when the file is no certificate, as the agent's."""

    def __init__(self, cert_file: Path | None) -> None:
        self.expiry = None if cert_file is None else certificate_expiry(cert_file)

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "mcp_mesh_registry_tls_certificate_expiry_timestamp_seconds",
            "Unix time the served certificate expires (0: plain HTTP or unreadable)",
        )
        gauge.add_metric([], (self.expiry.read() if self.expiry else None) or 0)
        yield gauge


def _client(request: Request) -> str | None:
    """The calling address, for the log of a refused call."""
    return request.client.host if request.client else None


def route_template(routes: list[Route]) -> Callable[[Scope], str]:
    """The route label of the request metrics: the matching route's template, or `unmatched`."""

    def route_of(scope: Scope) -> str:
        for route in routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return route.path
        return "unmatched"

    return route_of


class UnavailableAnswer:
    """The 503 of a call the database could not serve; warns once per UNAVAILABLE_LOG_EVERY."""

    def __init__(self) -> None:
        self.last_warning = -UNAVAILABLE_LOG_EVERY

    async def __call__(self, request: Request, exc: Exception) -> Response:
        reason = str(exc)
        now = time.monotonic()
        if now - self.last_warning >= UNAVAILABLE_LOG_EVERY:
            self.last_warning = now
            log.warning("registry database unavailable", extra={"fields": {"reason": reason}})
        return JSONResponse(
            {"error": "registry database unavailable", "reason": reason},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER)},
        )


def create_app(config: RegistryConfig, store: RegistryStore) -> Starlette:
    """The registry application around `store`; its lifespan runs the sweep."""
    started = time.monotonic()
    metrics = CollectorRegistry(auto_describe=True)
    metrics.register(AgentsCollector(store))
    metrics.register(CertificateCollector(config.tls.cert_file))
    requests = Counter(
        "mcp_mesh_registry_requests",
        "HTTP requests served by the registry",
        ["method", "route", "status"],
        registry=metrics,
    )

    bearer = BearerCheck(config.token)

    def authorized(request: Request) -> bool:
        return bearer.refusal(request.scope) is None

    def unauthorized() -> JSONResponse:
        return _error(401, "missing or wrong bearer token", **bearer.challenge())

    async def register(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        try:
            key = _agent_key(request)
            name, host, port, version, capabilities = _registration(await _read_json(request))
        except BadRequest as exc:
            if exc.status == 413:  # the rest of the body is not wanted: close the connection
                return _error(413, str(exc), Connection="close")
            return _error(exc.status, str(exc))
        try:
            agent = await run_in_threadpool(
                store.register, name, host, port, version, capabilities, key=key
            )
        except NotYours as refusal:
            log.warning(
                "refused a registration of an agent bound to another key",
                extra={"fields": {"agent": name, "host": host, "client": _client(request)}},
            )
            return _error(409, str(refusal))
        fields = {"agent": name, "host": host, "port": port, "bound": agent.bound}
        log.info("agent registered", extra={"fields": fields})
        if key is None and not agent.bound:
            log.warning(
                "agent registered without an agent key: any holder of the registry token can "
                "take its entry over until it registers with one (upgrade it)",
                extra={"fields": {"agent": name}},
            )
        return JSONResponse({"agent": agent.to_json()})

    async def heartbeat(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        name = request.path_params["name"]
        try:
            agent = await run_in_threadpool(store.heartbeat, name, key=_agent_key(request))
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        except NotYours as refusal:
            return _error(403, str(refusal))
        if agent is None:
            return _error(404, f"unknown agent {name!r}: register again")
        return JSONResponse({"agent": agent.to_json()})

    async def deregister(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        name = request.path_params["name"]
        try:
            removed = await run_in_threadpool(store.deregister, name, key=_agent_key(request))
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        except NotYours as refusal:
            log.warning(
                "refused a deregistration of an agent bound to another key",
                extra={"fields": {"agent": name, "client": _client(request)}},
            )
            return _error(403, str(refusal))
        if not removed:
            return _error(404, f"unknown agent {name!r}")
        log.info("agent deregistered", extra={"fields": {"agent": name}})
        return JSONResponse({"deleted": name})

    async def list_agents(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        status = request.query_params.get("status") or None
        if status is not None and status not in STATUSES:
            return _error(422, f"status must be one of {', '.join(STATUSES)}")
        agents = await run_in_threadpool(
            store.list,
            status=status,
            name=request.query_params.get("name") or None,
            version=request.query_params.get("version") or None,
        )
        return JSONResponse({"agents": [agent.to_json() for agent in agents]})

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "healthy",
                "version": __version__,
                "uptime_seconds": round(time.monotonic() - started, 3),
            }
        )

    async def ready(request: Request) -> Response:
        if await run_in_threadpool(store.ping):
            return JSONResponse({"ready": True})
        return JSONResponse(
            {"ready": False, "reason": "registry database unavailable"}, status_code=503
        )

    async def metrics_endpoint(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        body = await run_in_threadpool(generate_latest, metrics)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/agents/register", register, methods=["POST"]),
        Route("/agents/{name}/heartbeat", heartbeat, methods=["POST"]),
        Route("/agents/{name}", deregister, methods=["DELETE"]),
        Route("/agents", list_agents, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sweep = asyncio.create_task(_sweep_forever(store, config.sweep_interval))
        log.info("registry ready", extra={"fields": {"host": config.host, "port": config.port}})
        try:
            yield
        finally:
            sweep.cancel()
            await asyncio.gather(sweep, return_exceptions=True)

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={StoreUnavailable: UnavailableAnswer()},
    )
    app.add_middleware(RequestMetrics, route_of=route_template(routes), requests=requests)
    return app


async def _sweep_forever(store: RegistryStore, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            removed = await asyncio.to_thread(store.sweep)
        except StoreUnavailable as exc:  # the requests' 503s say it too; no traceback
            log.warning("sweep skipped", extra={"fields": {"reason": str(exc)}})
            continue
        except Exception:
            log.exception("sweep failed")
            continue
        if removed:
            log.info("removed agents past retention", extra={"fields": {"removed": removed}})

"""Registry membership: register, heartbeat every HEALTH_INTERVAL, re-register on 404.

Failed calls are retried with exponential backoff (RETRY_INITIAL_DELAY, x RETRY_BACKOFF, at
most RETRY_MAX_DELAY, with jitter so a fleet does not retry in step). Registration is retried
for as long as the agent runs; a heartbeat round gives up after RETRY_ATTEMPTS retries and
the next round comes one interval later. Whether the agent may serve meanwhile is decided by
FALLBACK_MODE, in `lifecycle`.

Besides the shared registry token, every write carries this agent's own key (`registry_key`):
the registry binds the name to it at the first registration and refuses (409/403) a change of
this entry by anyone without it. A refusal is reported with the registry's reason.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import random
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mcp_mesh_sdk.agent.registry_key import RegistryKeyError, load_or_create_key
from mcp_mesh_sdk.config import AgentConfig
from mcp_mesh_sdk.constants import AGENT_KEY_HEADER
from mcp_mesh_sdk.envreader import Secret
from mcp_mesh_sdk.serving.tls import TlsError, client_context

if TYPE_CHECKING:
    import httpx2

logger = logging.getLogger("mcp_mesh_sdk.agent.registry")


@dataclass
class RegistryStatus:
    registered: bool = False
    reachable: bool = False  # False after a failed registration or a failed heartbeat round
    registered_at: datetime | None = None
    last_heartbeat: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0

    def problem(self) -> str | None:
        """Why the agent is not in good standing with the registry (None when it is)."""
        if not self.registered:
            return "not_registered"
        if not self.reachable:
            return "registry_unreachable"
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "registered": self.registered,
            "reachable": self.reachable,
            "registered_at": _iso(self.registered_at),
            "last_heartbeat": _iso(self.last_heartbeat),
            "error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
        }


class RegistryCallFailed(Exception):
    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class UnknownToRegistry(Exception):
    """The registry answered 404 to a heartbeat: it forgot this agent."""


def backoff_delays(config: AgentConfig) -> Callable[[int], float]:
    """Seconds to wait before retry number `n` (0-based): exponential, capped, jittered."""
    initial = config.retry_initial_delay / 1000
    ceiling = config.retry_max_delay / 1000

    def delay(n: int) -> float:
        exponent = min(n, 64)
        base = min(ceiling, initial * config.retry_backoff**exponent)
        return base * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not cryptography

    return delay


class RegistryClient:
    def __init__(
        self,
        config: AgentConfig,
        *,
        version: str,
        capabilities: Sequence[str],
        on_change: Callable[[], None] = lambda: None,
        on_failure: Callable[[str], None] = lambda call: None,
    ) -> None:
        self.config = config
        self.version = version
        self.capabilities = list(capabilities)
        self.status = RegistryStatus()
        self._on_change = on_change
        self._on_failure = on_failure
        self._delay = backoff_delays(config)
        self._client: httpx2.AsyncClient | None = None
        self._stopped = False
        self._register_sent = False
        self._key: Secret | None = None

    # -- the loop --------------------------------------------------------------------------------
    async def run(self) -> None:
        """Register, then heartbeat until cancelled or `stop()`."""
        # Imported off the event loop: a 0.1 s import would stall every request meanwhile.
        httpx2 = await asyncio.to_thread(importlib.import_module, "httpx2")

        headers = {"User-Agent": f"mcp-mesh-agent/{self.version}"}
        if self.config.registry_token is not None:
            headers["Authorization"] = f"Bearer {self.config.registry_token.reveal()}"
        timeout = httpx2.Timeout(float(self.config.request_timeout))
        verify = await self._verification()
        async with httpx2.AsyncClient(
            base_url=self.config.mesh_registry_url, headers=headers, timeout=timeout,
            trust_env=False, verify=verify,
        ) as client:  # fmt: skip
            self._client = client
            try:
                await self._loop()
            finally:
                self._client = None

    def stop(self) -> None:
        """Stop registering and heartbeating (shutdown: the agent is leaving)."""
        self._stopped = True

    def _verify(self) -> ssl.SSLContext | bool:
        """How an https:// registry is verified: against MCP_MESH_TLS_CA_FILE (the system's
        CAs when unset), host name included. TlsError when the CA file cannot be read."""
        return (
            client_context(
                self.config.mesh_registry_url, self.config.tls.ca_file, relax_loopback=False
            )
            or True
        )

    async def _verification(self) -> ssl.SSLContext | bool:
        """`_verify()`, retried with the backoff while the CA file cannot be read."""
        failures = 0
        while True:
            try:
                return self._verify()
            except TlsError as exc:
                self._failed("register", str(exc))
                failures += 1
                await asyncio.sleep(self._delay(failures - 1))

    async def _loop(self) -> None:
        failures = 0
        while not self._stopped:
            if not self.status.registered:
                if await self._register():
                    failures = 0
                else:
                    failures += 1
                    if failures == self.config.retry_attempts + 1:
                        mode = (
                            "serving (fallback mode)"
                            if self.config.fallback_mode
                            else ("NOT ready (FALLBACK_MODE=false)")
                        )
                        logger.error(
                            "registry %s unreachable after %d attempts; %s, still retrying",
                            self.config.mesh_registry_url, failures, mode,
                        )  # fmt: skip
                    await asyncio.sleep(self._delay(failures - 1))
                    continue
            await asyncio.sleep(self.config.health_interval)
            if not self._stopped:
                await self._heartbeat_round()

    async def _register(self) -> bool:
        if self._key is None:
            try:
                self._key = await asyncio.to_thread(load_or_create_key, self.config.state_dir)
            except RegistryKeyError as exc:
                self._failed("register", str(exc))
                return False
        body = {
            "name": self.config.agent_name,
            "host": self.config.advertise_host,
            "port": self.config.port,
            "version": self.version,
            "capabilities": self.capabilities,
        }
        self._register_sent = True  # from here on the registry may know this agent
        try:
            await self._call("POST", "/agents/register", json=body)
        except RegistryCallFailed as exc:
            self._failed("register", str(exc))
            return False
        now = datetime.now(UTC)
        self.status.registered = True
        self.status.reachable = True
        self.status.registered_at = now
        self.status.last_heartbeat = now
        self.status.last_error = None
        self.status.consecutive_failures = 0
        logger.info(
            "registered with the registry at %s as %s",
            self.config.mesh_registry_url,
            self.config.agent_name,
        )
        self._on_change()
        return True

    async def _heartbeat_round(self) -> None:
        path = f"/agents/{quote(self.config.agent_name, safe='')}/heartbeat"
        for attempt in range(self.config.retry_attempts + 1):
            try:
                await self._call("POST", path, unknown_is_error=True)
            except UnknownToRegistry:
                logger.warning(
                    "the registry no longer knows %s; registering again", self.config.agent_name
                )
                self.status.registered = False
                self._on_change()
                return
            except RegistryCallFailed as exc:
                self._failed("heartbeat", str(exc))
                if not exc.retryable or attempt == self.config.retry_attempts or self._stopped:
                    self._unreachable()
                    return
                await asyncio.sleep(self._delay(attempt))
                continue
            self.status.last_heartbeat = datetime.now(UTC)
            if self.status.last_error is not None or not self.status.reachable:
                logger.info("registry heartbeats work again")
                self.status.last_error = None
                self.status.consecutive_failures = 0
                self.status.reachable = True
                self._on_change()
            return

    def _unreachable(self) -> None:
        """A whole heartbeat round failed: the registry cannot vouch for this agent now."""
        if self.status.reachable:
            self.status.reachable = False
            logger.warning("registry heartbeats fail; it will list this agent as stale")
            self._on_change()

    async def deregister(self, timeout: float = 3.0) -> bool:
        """Leave the registry (at shutdown); False when it could not be told."""
        self.stop()
        if not (self.status.registered or self._register_sent):
            return False
        import httpx2

        headers = self._key_header()
        if self.config.registry_token is not None:
            headers["Authorization"] = f"Bearer {self.config.registry_token.reveal()}"
        url = f"{self.config.mesh_registry_url}/agents/{quote(self.config.agent_name, safe='')}"
        try:
            verify = self._verify()
            async with httpx2.AsyncClient(
                timeout=timeout, trust_env=False, verify=verify
            ) as client:
                response = await client.delete(url, headers=headers)
        except (httpx2.HTTPError, TlsError) as exc:
            logger.warning("could not deregister from the registry: %s", _describe_error(exc))
            return False
        self.status.registered = False
        self.status.reachable = False
        self._on_change()
        if response.status_code >= 400 and response.status_code != 404:
            logger.warning(
                "registry refused the deregistration: HTTP %d%s",
                response.status_code,
                _reason(response),
            )
            return False
        logger.info("deregistered from the registry")
        return True

    # -- one HTTP call ---------------------------------------------------------------------------
    def _key_header(self) -> dict[str, str]:
        return {} if self._key is None else {AGENT_KEY_HEADER: self._key.reveal()}

    async def _call(
        self, method: str, path: str, *, json: Any = None, unknown_is_error: bool = False
    ) -> Any:
        import httpx2

        assert self._client is not None
        try:
            response = await self._client.request(
                method, path, json=json, headers=self._key_header()
            )
        except httpx2.HTTPError as exc:
            raise RegistryCallFailed(_describe_error(exc)) from exc
        if response.status_code == 404 and unknown_is_error:
            raise UnknownToRegistry()
        if response.status_code == 401:
            raise RegistryCallFailed(
                "registry refused the token (HTTP 401); check MCP_MESH_REGISTRY_TOKEN",
                retryable=False,
            )
        if response.status_code in (403, 409):  # this name is bound to another agent key
            raise RegistryCallFailed(
                f"registry refused {self.config.agent_name} (HTTP {response.status_code})"
                f"{_reason(response)}",
                retryable=False,
            )
        if response.status_code >= 400:
            retryable = response.status_code >= 500 or response.status_code == 429
            raise RegistryCallFailed(
                f"registry answered HTTP {response.status_code} to {path}", retryable=retryable
            )
        try:
            return response.json()
        except ValueError:
            return None

    def _failed(self, call: str, reason: str) -> None:
        first = self.status.last_error is None
        self.status.last_error = f"{call}: {reason}"
        self.status.consecutive_failures += 1
        self._on_failure(call)
        log = logger.warning if first else logger.debug
        log("registry %s failed: %s", call, reason)
        if first:
            self._on_change()


def _reason(response: Any) -> str:
    """`: <the registry's error message>`, short, or nothing when it sent none."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {error[:300]}" if isinstance(error, str) and error else ""


def _describe_error(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None

"""Make an installed release the running one: migrate, switch `current`, restart, gate, soak.

This is one host's part of a rolling upgrade or rollback, run on the host by the release being
activated (`<install>/releases/<version>/venv/bin/mcp-mesh-sdk release activate`), so a cycle
costs one remote call instead of a dozen. Steps, each named in the error when it fails:

1. `migrate`: bring the state to this release's schema. State migrated by a newer release is
   first rolled back by the release that is current now (only it knows those migrations).
2. `switch`: the replaced release becomes `previous`, this one `current` (atomic renames).
3. `restart`: restart the unit. With `skip_drain_delay` (the caller has already taken the
   host out of the load balancer) the agent first gets SIGTERM twice, which it reads as
   "skip the rest of the drain delay": nothing is left to drain. (systemd itself sends no
   second signal: the agent's STOPPING=1 makes it just wait.)
4. `ready`: /ready answers 200 and /health reports this release's version.
5. `smoke` (agents, unless turned off): the agent's own /mcp, driven by the official MCP client
   with the agent's token, passes the checks of `smoke.py` (initialize, tools/list, a hidden
   file written, read back, listed, stat'ed and removed) within min(timeout, 30 s). Its time
   counts towards the soak, which runs from step 4 on.
6. `registry`: the registry lists the agent healthy on this version (agents only).
7. `soak`: stays healthy, on the same process, until `soak` seconds after step 4 passed.

The caller drains and enables the host in the load balancer around this, and on failure
activates the old release the same way (its own binary).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mcp_mesh_sdk import __version__, migrate
from mcp_mesh_sdk.atomicfile import fsync_directory
from mcp_mesh_sdk.constants import UNITS
from mcp_mesh_sdk.envreader import Secret
from mcp_mesh_sdk.errors import OpsError
from mcp_mesh_sdk.serving.tls import client_context
from mcp_mesh_sdk.smoke import SMOKE_TIMEOUT, SmokeResult, SmokeRunner, SmokeTarget, run_smoke

POLL_SECONDS = 0.1


class ActivationFailed(OpsError):
    """A step failed; `step` names it (the host is left for the caller to switch back)."""

    exit_code = 1

    def __init__(self, step: str, cause: str) -> None:
        super().__init__(f"step '{step}' failed: {cause}")
        self.step = step
        self.cause = cause


class Host(Protocol):
    """What activation needs from the host; tests give a fake."""

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]: ...

    def get(
        self, url: str, timeout: float, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any]: ...


class SystemHost:
    """The real host: subprocesses and HTTP GETs on loopback or the mesh (https:// verified
    against `ca_file`, the system's CAs when None)."""

    def __init__(self, ca_file: Path | None = None) -> None:
        self.ca_file = ca_file

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def get(
        self, url: str, timeout: float, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        """(status, parsed JSON or None); status 0 when nothing answered."""
        request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310
        context = client_context(url, self.ca_file)  # TlsError: a CA file that cannot serve
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        except (OSError, ValueError):
            return 0, None
        try:
            return status, json.loads(body)
        except ValueError:
            return status, None


@dataclass(frozen=True)
class Plan:
    """What to activate and how to check it."""

    release_dir: Path
    install_dir: Path
    service: str  # agent or registry
    state_dir: Path
    url: str  # the service's own base URL, e.g. http://127.0.0.1:8080 (https:// with TLS)
    ca_file: Path | None = None  # https:// is verified against it (the system's CAs: None)
    version: str = __version__
    registry_url: str | None = None  # agents: wait until listed healthy there
    registry_token: Secret | None = None  # the registry's reads need it too
    agent_name: str | None = None
    soak: float = 0.0
    timeout: float = 60.0
    skip_drain_delay: bool = False
    undo_with: Path | None = None  # the release that rolls back newer state (default: current)
    smoke: bool = False  # agents: smoke-test /mcp once ready (`release activate --smoke`)
    smoke_target: SmokeTarget | None = None  # the agent's /mcp, token and BASE_DIRECTORY

    @property
    def smokes(self) -> bool:
        """Whether the smoke step runs: asked for, and an agent (a registry has none)."""
        return self.smoke and self.service == "agent"

    @property
    def unit(self) -> str:
        return UNITS[self.service]


@dataclass
class Report:
    """The `--json` document."""

    release: str
    release_dir: str
    replaced: str | None
    migrations: list[dict[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    smoke: dict[str, Any] | None = None  # SmokeResult.to_json(); None when no smoke ran

    def to_json(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "release_dir": self.release_dir,
            "replaced": self.replaced,
            "migrations": self.migrations,
            "seconds": self.seconds,
            "smoke": self.smoke,
        }


def release_dir_of_running_binary() -> Path:
    """`<install>/releases/<version>` for a command run from `<that>/venv/bin`."""
    return Path(sys.prefix).resolve().parent


def current_release(install_dir: Path) -> Path | None:
    link = install_dir / "current"
    return link.resolve() if link.is_symlink() else None


def replace_link(link: Path, target: Path) -> None:
    """Point `link` at `target` by renaming a new link over it: readers never see no link."""
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    temporary.replace(link)
    fsync_directory(link.parent)


class Activation:
    def __init__(
        self,
        plan: Plan,
        host: Host | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        smoke: SmokeRunner | None = None,
    ) -> None:
        self.plan = plan
        self.host = host or SystemHost(plan.ca_file)
        self.clock = clock
        self.sleep = sleep
        self.smoke = smoke or self._smoke_the_target
        self.replaced = current_release(plan.install_dir)
        self._healthy_since = 0.0
        self.report = Report(
            release=plan.version,
            release_dir=str(plan.release_dir),
            replaced=str(self.replaced) if self.replaced else None,
        )

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        steps = [
            ("migrate", self._migrate),
            ("switch", self._switch),
            ("restart", self._restart),
            ("ready", self._wait_ready),
        ]
        if self.plan.smokes:
            steps.append(("smoke", self._smoke))
        return [*steps, ("registry", self._wait_listed), ("soak", self._soak)]

    def run(self) -> Report:
        for step, action in self.steps():
            started = self.clock()
            try:
                action()
            except ActivationFailed:
                raise
            except (OpsError, OSError, subprocess.SubprocessError) as exc:
                raise ActivationFailed(step, str(exc)) from exc
            self.report.seconds[step] = round(self.clock() - started, 3)
        return self.report

    # -- steps ------------------------------------------------------------------------------

    def _migrate(self) -> None:
        state_dir = self.plan.state_dir
        latest = migrate.latest_schema_version()
        if migrate.schema_version(state_dir) > latest:
            self._roll_back_with_current(latest)
        outcome = migrate.upgrade(state_dir)
        self.report.migrations += outcome.ran

    def _roll_back_with_current(self, to: int) -> None:
        """Undo, with a newer release, the migrations this (older) release does not know."""
        newer = self.plan.undo_with or self.replaced
        if newer is None or newer == self.plan.release_dir:
            raise ActivationFailed(
                "migrate",
                f"the state in {self.plan.state_dir} has a newer schema than release "
                f"{self.plan.version} knows, and no newer release is current (or given with "
                "--undo-with) to roll it back",
            )
        binary = newer / "venv" / "bin" / "mcp-mesh-sdk"
        argv = [str(binary), "migrate", "--rollback", "--to", str(to), "--json"]
        done = self.host.run([*argv, "--state-dir", str(self.plan.state_dir)], self.plan.timeout)
        if done.returncode != 0:
            raise ActivationFailed(
                "migrate", f"rollback with {newer.name} failed: {done.stderr.strip()}"
            )
        self.report.migrations += json.loads(done.stdout).get("ran", [])

    def _switch(self) -> None:
        install = self.plan.install_dir
        if self.replaced is not None and self.replaced != self.plan.release_dir:
            replace_link(install / "previous", self.replaced)
        replace_link(install / "current", self.plan.release_dir)

    def _systemctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.host.run(["systemctl", *args], self.plan.timeout)

    def _signal(self) -> bool:
        """SIGTERM to the unit's main process; False when it is not running."""
        argv = ["kill", "--kill-whom=main", "--signal=SIGTERM", self.plan.unit]
        return self._systemctl(*argv).returncode == 0

    def _draining(self) -> str | None:
        status, _ = self.host.get(f"{self.plan.url}/ready", 2.0)
        return None if status != 200 else "the service has not started to drain"

    def _restart(self) -> None:
        if self.plan.skip_drain_delay and self._signal():
            self._until("restart", self._draining)  # the first signal was handled
            self._signal()  # the second: close the listener now, finish what is in flight
        done = self._systemctl("restart", self.plan.unit)
        if done.returncode != 0:
            raise ActivationFailed("restart", done.stderr.strip() or f"exit {done.returncode}")

    def _until(self, step: str, check: Callable[[], str | None]) -> None:
        """Poll `check` (None: done; else why not) until it passes or the time runs out."""
        deadline = self.clock() + self.plan.timeout
        while (why := check()) is not None:
            if self.clock() >= deadline:
                raise ActivationFailed(step, f"{why} after {self.plan.timeout:g} s")
            self.sleep(POLL_SECONDS)

    def _healthy(self) -> str | None:
        status, _ = self.host.get(f"{self.plan.url}/ready", 2.0)
        if status != 200:
            return f"{self.plan.url}/ready answered {status or 'nothing'}"
        status, health = self.host.get(f"{self.plan.url}/health", 2.0)
        version = health.get("version") if isinstance(health, dict) else None
        if status != 200 or version != self.plan.version:
            return f"{self.plan.url}/health answered {status or 'nothing'}, version {version}"
        return None

    def _wait_ready(self) -> None:
        self._until("ready", self._healthy)
        self._healthy_since = self.clock()

    def _smoke_the_target(self, timeout: float) -> SmokeResult:
        if self.plan.smoke_target is None:
            raise ActivationFailed("smoke", "the plan names no agent to smoke-test")
        return run_smoke(self.plan.smoke_target, timeout)

    def _smoke(self) -> None:
        """The agent's /mcp does its job; the soak's time runs on meanwhile."""
        limit = min(self.plan.timeout, SMOKE_TIMEOUT) if self.plan.timeout > 0 else SMOKE_TIMEOUT
        result = self.smoke(limit)
        self.report.smoke = result.to_json()
        if not result.passed:
            raise ActivationFailed("smoke", result.cause)

    def _listed(self) -> str | None:
        query = urllib.parse.urlencode(
            {"status": "healthy", "name": self.plan.agent_name, "version": self.plan.version}
        )
        registry = (self.plan.registry_url or "").rstrip("/")
        token = self.plan.registry_token
        headers = {"Authorization": f"Bearer {token.reveal()}"} if token is not None else {}
        status, body = self.host.get(f"{registry}/agents?{query}", 2.0, headers=headers)
        agents = body.get("agents") if isinstance(body, dict) else None
        if status == 200 and isinstance(agents, list) and len(agents) == 1:
            return None
        return (
            f"the registry at {registry} does not list {self.plan.agent_name} healthy on "
            f"{self.plan.version} (answered {status or 'nothing'})"
        )

    def _wait_listed(self) -> None:
        if self.plan.service == "agent" and self.plan.registry_url and self.plan.agent_name:
            self._until("registry", self._listed)

    def _main_pid(self) -> str:
        return self._systemctl("show", "--property=MainPID", "--value", self.plan.unit).stdout

    def _soak(self) -> None:
        if self.plan.soak <= 0:
            return
        pid = self._main_pid()
        self.sleep(max(0.0, self._healthy_since + self.plan.soak - self.clock()))
        if (now := self._main_pid()) != pid:
            raise ActivationFailed(
                "soak", f"{self.plan.unit} restarted during the soak (pid {pid.strip()} -> "
                f"{now.strip() or 'none'})"
            )  # fmt: skip
        if (why := self._healthy()) is not None:
            raise ActivationFailed("soak", f"unhealthy after {self.plan.soak:g} s: {why}")

"""`release activate`: one host's switch to an installed release, with a fake systemd and HTTP."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mcp_mesh_sdk import migrate
from mcp_mesh_sdk.cli import main
from mcp_mesh_sdk.release import Activation, ActivationFailed, Plan

URL = "http://127.0.0.1:8080"
REGISTRY = "http://registry:8000"


class FakeHost:
    """systemctl and HTTP as a healthy host answers them, unless a test says otherwise."""

    def __init__(self, version: str = "1.1.0") -> None:
        self.version = version
        self.commands: list[list[str]] = []
        self.ready_status = 200
        self.ready_after_kill = 503  # what /ready answers once a SIGTERM was sent
        self.signalled = False
        self.listed = True
        self.pids = ["101"]  # MainPID answers, one per call (the last repeats)
        self.restart_fails = False
        self.rollback_answer: dict[str, Any] = {"ran": [{"id": "0002_x", "direction": "down"}]}

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        self.commands.append(argv)
        out, code, err = "", 0, ""
        if argv[:2] == ["systemctl", "restart"] and self.restart_fails:
            code, err = 1, "Job for mcp-mesh-sdk.service failed."
        elif argv[:2] == ["systemctl", "kill"]:
            self.signalled = True
        elif argv[:2] == ["systemctl", "restart"]:
            self.signalled = False
        elif argv[:2] == ["systemctl", "show"]:
            out = self.pids.pop(0) if len(self.pids) > 1 else self.pids[0]
        elif "migrate" in argv:
            out = json.dumps(self.rollback_answer)
        return subprocess.CompletedProcess(argv, code, out, err)

    def get(self, url: str, timeout: float) -> tuple[int, Any]:
        if url.endswith("/ready"):
            status = self.ready_after_kill if self.signalled else self.ready_status
            return status, {"ready": status == 200}
        if url.endswith("/health"):
            return 200, {"status": "healthy", "version": self.version}
        if "/agents?" in url:
            return 200, {"agents": [{"name": "agent-1"}] if self.listed else []}
        raise AssertionError(f"unexpected GET {url}")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def install(tmp_path: Path) -> Path:
    for version in ("1.0.0", "1.1.0"):
        (tmp_path / "releases" / version / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "current").symlink_to(tmp_path / "releases" / "1.0.0")
    return tmp_path


def plan_for(install: Path, tmp_path: Path, **changes: Any) -> Plan:
    settings: dict[str, Any] = {
        "release_dir": install / "releases" / "1.1.0",
        "install_dir": install,
        "service": "agent",
        "state_dir": tmp_path / "state",
        "url": URL,
        "version": "1.1.0",
        "registry_url": REGISTRY,
        "agent_name": "agent-1",
        "soak": 2.0,
        "timeout": 5.0,
    }
    return Plan(**(settings | changes))


def activate(plan: Plan, host: FakeHost) -> tuple[Activation, Any]:
    clock = FakeClock()
    activation = Activation(plan, host=host, clock=clock, sleep=clock.sleep)
    return activation, activation.run()


def test_activation_migrates_switches_restarts_and_reports_each_step(
    install: Path, tmp_path: Path
) -> None:
    host = FakeHost()
    _, report = activate(plan_for(install, tmp_path), host)

    assert (install / "current").resolve() == install / "releases" / "1.1.0"
    assert (install / "previous").resolve() == install / "releases" / "1.0.0"
    assert ["systemctl", "restart", "mcp-mesh-sdk.service"] in host.commands
    assert migrate.schema_version(tmp_path / "state") == migrate.latest_schema_version()
    assert [step["direction"] for step in report.migrations] == ["up"] * len(report.migrations)
    assert list(report.seconds) == ["migrate", "switch", "restart", "ready", "registry", "soak"]
    assert report.replaced == str(install / "releases" / "1.0.0")


def test_skip_drain_delay_signals_twice_once_draining_then_restarts(
    install: Path, tmp_path: Path
) -> None:
    host = FakeHost()
    activate(plan_for(install, tmp_path, skip_drain_delay=True), host)

    systemctl = [argv[1] for argv in host.commands if argv[0] == "systemctl"]
    assert systemctl[:3] == ["kill", "kill", "restart"]


def test_skip_drain_delay_gives_up_when_the_service_never_starts_draining(
    install: Path, tmp_path: Path
) -> None:
    host = FakeHost()
    host.ready_after_kill = 200

    with pytest.raises(ActivationFailed) as failure:
        activate(plan_for(install, tmp_path, skip_drain_delay=True), host)

    assert failure.value.step == "restart"
    assert "not started to drain" in failure.value.cause


def test_the_soak_counts_from_the_moment_the_service_was_healthy(
    install: Path, tmp_path: Path
) -> None:
    host = FakeHost()
    host.listed = False
    clock = FakeClock()
    real_get = host.get

    def get(url: str, timeout: float) -> tuple[int, Any]:
        if "/agents?" in url and clock.now >= 1.5:  # listed 1.5 s after becoming healthy
            host.listed = True
        return real_get(url, timeout)

    host.get = get  # type: ignore[method-assign]
    Activation(plan_for(install, tmp_path), host=host, clock=clock, sleep=clock.sleep).run()

    assert clock.now == pytest.approx(2.0)


def test_without_skip_drain_delay_the_service_is_only_restarted(
    install: Path, tmp_path: Path
) -> None:
    host = FakeHost()
    activate(plan_for(install, tmp_path), host)

    assert not [argv for argv in host.commands if argv[:2] == ["systemctl", "kill"]]


@pytest.mark.parametrize(
    ("change", "step", "cause"),
    [
        ({"ready_status": 503}, "ready", "/ready answered 503"),
        ({"version": "1.0.0"}, "ready", "version 1.0.0"),
        ({"listed": False}, "registry", "does not list agent-1 healthy on 1.1.0"),
        ({"restart_fails": True}, "restart", "Job for mcp-mesh-sdk.service failed"),
        ({"pids": ["101", "202"]}, "soak", "restarted during the soak"),
    ],
)
def test_a_failing_step_is_named_with_its_cause(
    install: Path, tmp_path: Path, change: dict[str, Any], step: str, cause: str
) -> None:
    host = FakeHost()
    for key, value in change.items():
        setattr(host, key, value)

    with pytest.raises(ActivationFailed) as failure:
        activate(plan_for(install, tmp_path), host)

    assert failure.value.step == step
    assert cause in failure.value.cause


def state_from_a_newer_release(tmp_path: Path) -> tuple[Path, str]:
    """A state directory with one migration applied that this runtime does not know."""
    state = tmp_path / "state"
    state.mkdir()
    from_the_future = f"{migrate.latest_schema_version() + 1:04d}_from_the_future"
    (state / migrate.APPLIED_FILE).write_text(json.dumps([from_the_future]))
    return state, from_the_future


def test_state_from_a_newer_release_is_rolled_back_by_that_release_first(
    install: Path, tmp_path: Path
) -> None:
    state, from_the_future = state_from_a_newer_release(tmp_path)
    newest = migrate.latest_schema_version()
    (install / "current").unlink()
    (install / "current").symlink_to(install / "releases" / "1.1.0")
    host = FakeHost(version="1.0.0")
    host.rollback_answer = {"ran": [{"id": from_the_future, "direction": "down"}]}
    real_run = host.run

    def run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        if "migrate" in argv:  # what the newer release's rollback does to the state
            (state / migrate.APPLIED_FILE).write_text("[]")
        return real_run(argv, timeout)

    host.run = run  # type: ignore[method-assign]
    back_to_old = plan_for(
        install, tmp_path, release_dir=install / "releases" / "1.0.0", version="1.0.0"
    )
    _, report = activate(back_to_old, host)

    binary, *args = next(argv for argv in host.commands if "migrate" in argv)
    assert binary == str(install / "releases" / "1.1.0" / "venv" / "bin" / "mcp-mesh-sdk")
    assert args[:4] == ["migrate", "--rollback", "--to", str(newest)]
    assert report.migrations[0] == {"id": from_the_future, "direction": "down"}
    assert (install / "current").resolve() == install / "releases" / "1.0.0"
    assert (install / "previous").resolve() == install / "releases" / "1.1.0"


def test_newer_state_without_a_newer_release_to_undo_it_is_refused(
    install: Path, tmp_path: Path
) -> None:
    state_from_a_newer_release(tmp_path)
    already_current = plan_for(
        install, tmp_path, release_dir=install / "releases" / "1.0.0", version="1.0.0"
    )

    with pytest.raises(ActivationFailed) as failure:
        activate(already_current, FakeHost(version="1.0.0"))

    assert failure.value.step == "migrate"
    assert "newer schema" in failure.value.cause
    assert (install / "current").resolve() == install / "releases" / "1.0.0"


def test_the_command_refuses_a_release_dir_outside_a_releases_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / "agent.env"
    env.write_text("MCP_MESH_TOKEN=0123456789abcdef0123456789abcdef\n")

    code = main(["release", "activate", "--release-dir", str(tmp_path), "--env-file", str(env)])

    assert code == 78
    assert "not inside a releases directory" in capsys.readouterr().err

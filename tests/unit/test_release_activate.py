"""`release activate`: one host's switch to an installed release, with a fake systemd and HTTP."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mcp_mesh_sdk import migrate
from mcp_mesh_sdk.cli import main
from mcp_mesh_sdk.commands import release as release_command
from mcp_mesh_sdk.release import Activation, ActivationFailed, Plan
from mcp_mesh_sdk.smoke import SmokeResult

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
        self.headers: dict[str, dict[str, str]] = {}  # the last GET's headers, by endpoint

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

    def get(self, url: str, timeout: float, headers: Any = None) -> tuple[int, Any]:
        self.headers[url.split("?")[0].rsplit("/", 1)[1]] = dict(headers or {})
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


class FakeSmoke:
    """Stands in for the MCP smoke test: records each call, takes `takes` seconds of the clock."""

    CHECKS = ("initialize", "tools/list", "write_file", "read_file", "list_directory",
              "file_info", "cleanup")  # fmt: skip

    def __init__(self, clock: FakeClock, takes: float = 0.4, fails: str | None = None) -> None:
        self.clock = clock
        self.takes = takes
        self.fails = fails  # "<check>: <what>"
        self.calls: list[tuple[float, float]] = []  # (clock when called, timeout given)

    def __call__(self, timeout: float) -> SmokeResult:
        self.calls.append((self.clock.now, timeout))
        self.clock.sleep(self.takes)
        if self.fails is None:
            return SmokeResult(passed=True, checks=list(self.CHECKS), seconds=self.takes)
        check, error = self.fails.split(": ", 1)
        passed = list(self.CHECKS[: self.CHECKS.index(check)])
        return SmokeResult(False, passed, self.takes, failed_check=check, error=error)


def activate(plan: Plan, host: FakeHost, smoke: FakeSmoke | None = None) -> tuple[Activation, Any]:
    clock = smoke.clock if smoke else FakeClock()
    activation = Activation(plan, host=host, clock=clock, sleep=clock.sleep, smoke=smoke)
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

    def get(url: str, timeout: float, headers: Any = None) -> tuple[int, Any]:
        if "/agents?" in url and clock.now >= 1.5:  # listed 1.5 s after becoming healthy
            host.listed = True
        return real_get(url, timeout, headers)

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


# -- the smoke step ------------------------------------------------------------------------------


def test_the_smoke_runs_after_ready_and_before_the_registry_and_is_reported(
    install: Path, tmp_path: Path
) -> None:
    host = FakeHost()
    smoke = FakeSmoke(FakeClock())
    events: list[str] = []
    real_get = host.get

    def get(url: str, timeout: float, headers: Any = None) -> tuple[int, Any]:
        events.append(url.rsplit("/", 1)[1].split("?")[0])
        return real_get(url, timeout, headers)

    def smoke_it(timeout: float) -> SmokeResult:
        events.append("smoke")
        return smoke(timeout)

    host.get = get  # type: ignore[method-assign]
    activation = Activation(plan_for(install, tmp_path, smoke=True), host=host,
                            clock=smoke.clock, sleep=smoke.clock.sleep, smoke=smoke_it)  # fmt: skip
    report = activation.run()

    steps = ["migrate", "switch", "restart", "ready", "smoke", "registry", "soak"]
    assert list(report.seconds) == steps
    assert events[:4] == ["ready", "health", "smoke", "agents"]
    assert report.seconds["smoke"] == pytest.approx(0.4)
    assert [timeout for _, timeout in smoke.calls] == [5.0]  # the plan's timeout, under 30 s
    assert report.to_json()["smoke"] == {
        "passed": True, "checks": list(FakeSmoke.CHECKS), "seconds": 0.4,
    }  # fmt: skip


def test_the_smoke_has_its_own_limit_of_30_seconds(install: Path, tmp_path: Path) -> None:
    smoke = FakeSmoke(FakeClock())
    activate(plan_for(install, tmp_path, smoke=True, timeout=60.0), FakeHost(), smoke)

    assert [timeout for _, timeout in smoke.calls] == [30.0]


def test_a_failed_smoke_fails_the_step_naming_the_check_and_stops_there(
    install: Path, tmp_path: Path
) -> None:
    host = FakeHost()
    smoke = FakeSmoke(FakeClock(), fails="tools/list: the agent does not list the tool file_info")
    activation = Activation(plan_for(install, tmp_path, smoke=True), host=host,
                            clock=smoke.clock, sleep=smoke.clock.sleep, smoke=smoke)  # fmt: skip

    with pytest.raises(ActivationFailed) as failure:
        activation.run()

    assert failure.value.step == "smoke"
    assert failure.value.cause == "tools/list: the agent does not list the tool file_info"
    assert str(failure.value) == (
        "step 'smoke' failed: tools/list: the agent does not list the tool file_info"
    )
    assert activation.report.to_json()["smoke"] == {
        "passed": False, "checks": ["initialize"], "seconds": 0.4,
        "failed_check": "tools/list", "error": "the agent does not list the tool file_info",
    }  # fmt: skip
    assert "smoke" not in activation.report.seconds  # a failed step has no time of its own
    assert not [argv for argv in host.commands if argv[:2] == ["systemctl", "show"]]  # no soak


@pytest.mark.parametrize(
    "changes", [{"service": "registry", "smoke": True}, {"smoke": False}], ids=["registry", "off"]
)
def test_no_smoke_for_a_registry_or_when_turned_off(
    install: Path, tmp_path: Path, changes: dict[str, Any]
) -> None:
    smoke = FakeSmoke(FakeClock())
    _, report = activate(plan_for(install, tmp_path, **changes), FakeHost(), smoke)

    assert smoke.calls == []
    assert "smoke" not in report.seconds
    assert report.to_json()["smoke"] is None


@pytest.mark.parametrize(("takes", "ends"), [(1.5, 2.0), (3.0, 3.0)])
def test_the_smoke_overlaps_the_soak_which_counts_from_ready(
    install: Path, tmp_path: Path, takes: float, ends: float
) -> None:
    smoke = FakeSmoke(FakeClock(), takes=takes)
    _, report = activate(plan_for(install, tmp_path, smoke=True, soak=2.0), FakeHost(), smoke)

    assert smoke.calls[0][0] == 0.0  # healthy at 0, smoked right away
    assert smoke.clock.now == pytest.approx(ends)  # soak: 2 s from ready, or the smoke's end
    assert report.seconds["soak"] == pytest.approx(ends - takes)


def test_a_smoke_without_a_runner_or_target_fails_the_step(install: Path, tmp_path: Path) -> None:
    clock = FakeClock()
    activation = Activation(plan_for(install, tmp_path, smoke=True), host=FakeHost(),
                            clock=clock, sleep=clock.sleep)  # fmt: skip

    with pytest.raises(ActivationFailed) as failure:
        activation.run()

    assert failure.value.step == "smoke"
    assert "no agent to smoke-test" in failure.value.cause


def agent_env_file(tmp_path: Path) -> Path:
    env = tmp_path / "agent.env"
    env.write_text(
        "MCP_MESH_TOKEN=0123456789abcdef0123456789abcdef\nMCP_MESH_PORT=8123\n"
        f"BASE_DIRECTORY={tmp_path / 'data'}\nALLOWED_EXTENSIONS=.yaml,.md\n"
    )
    return env


@pytest.mark.parametrize(("flags", "smokes"), [([], True), (["--smoke"], True),
                                               (["--no-smoke"], False)])  # fmt: skip
def test_activate_smokes_an_agent_by_default(
    install: Path, tmp_path: Path, flags: list[str], smokes: bool
) -> None:
    from mcp_mesh_sdk.cli import build_parser

    argv = ["release", "activate", "--release-dir", str(install / "releases" / "1.1.0"),
            "--env-file", str(agent_env_file(tmp_path)), *flags]  # fmt: skip
    plan = release_command._plan(build_parser(argv).parse_args(argv))

    assert plan.smoke is smokes and plan.smokes is smokes
    assert plan.smoke_target is not None
    assert plan.smoke_target.mcp_url == "http://127.0.0.1:8123/mcp"
    assert plan.smoke_target.base_directory == tmp_path / "data"
    assert plan.smoke_target.extension == ".md"  # the first allowed one


def test_a_registry_plan_has_no_smoke(install: Path, tmp_path: Path) -> None:
    from mcp_mesh_sdk.cli import build_parser

    env = tmp_path / "registry.env"
    env.write_text(f"MCP_MESH_REGISTRY_TOKEN={'r' * 32}\n")
    argv = ["release", "activate", "--service", "registry", "--smoke", "--env-file", str(env),
            "--release-dir", str(install / "releases" / "1.1.0")]  # fmt: skip
    plan = release_command._plan(build_parser(argv).parse_args(argv))

    assert not plan.smokes and plan.smoke_target is None


@pytest.mark.parametrize("passes", [True, False])
def test_release_smoke_runs_only_the_smoke_and_prints_its_result(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    passes: bool,
) -> None:
    import mcp_mesh_sdk.smoke

    smoke = FakeSmoke(FakeClock(), fails=None if passes else "read_file: read back 'x'")
    seen: list[tuple[str, float]] = []

    def fake(env_file: str, timeout: float) -> SmokeResult:
        seen.append((env_file, timeout))
        return smoke(timeout)

    monkeypatch.setattr(mcp_mesh_sdk.smoke, "smoke_agent", fake)
    env = str(agent_env_file(tmp_path))

    code = main(["release", "smoke", "--env-file", env, "--json"])

    out, err = capsys.readouterr()
    assert seen == [(env, 30.0)]
    assert code == (0 if passes else 1)
    assert json.loads(out)["passed"] is passes
    if not passes:
        assert "smoke failed: read_file: read back 'x'" in err
    assert main(["release", "smoke", "--env-file", env, "--timeout", "0"]) == 78


def test_smoke_result_json_names_the_failed_check_only_on_failure() -> None:
    passed = SmokeResult(True, ["initialize", "tools/list"], 0.05)
    failed = SmokeResult(False, ["initialize"], 0.05, "tools/list", "no read_file")

    assert passed.to_json() == {"passed": True, "checks": ["initialize", "tools/list"],
                                "seconds": 0.05}  # fmt: skip
    assert failed.to_json()["failed_check"] == "tools/list" and failed.cause == (
        "tools/list: no read_file"
    )


def test_the_registry_listing_is_read_with_the_registry_token(
    install: Path, tmp_path: Path
) -> None:
    from mcp_mesh_sdk.envreader import Secret

    host = FakeHost()
    activate(plan_for(install, tmp_path, registry_token=Secret("registry-token-" + "r" * 20)), host)
    assert host.headers["agents"] == {"Authorization": f"Bearer registry-token-{'r' * 20}"}
    assert host.headers["ready"] == {}  # the agent's own probes need none


def test_an_agent_plan_takes_the_registry_token_from_the_env_file(
    install: Path, tmp_path: Path
) -> None:
    from mcp_mesh_sdk.cli import build_parser

    env = agent_env_file(tmp_path)
    env.write_text(env.read_text() + f"MCP_MESH_REGISTRY_TOKEN={'q' * 32}\n")
    argv = ["release", "activate", "--release-dir", str(install / "releases" / "1.1.0"),
            "--env-file", str(env)]  # fmt: skip
    plan = release_command._plan(build_parser(argv).parse_args(argv))
    assert plan.registry_token is not None and plan.registry_token.reveal() == "q" * 32

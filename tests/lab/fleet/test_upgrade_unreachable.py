"""A host that becomes unreachable mid-rollout stops the rollout (issue #6).

The second agent's network is cut (its veth set down on the bridge) once the first agent serves
the new version, so the second agent becomes unreachable after the first is done and before its
own batch starts. upgrade.yml must stop there: it fails naming that host, the first agent stays
on the new version and healthy, the agents after it are never switched. Once the network is
back, the cut-off agent is healthy on the old version, which it never left. Teardown rolls the
first agent and the registry back, so the fleet ends on the session's version.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.lab.fleet.conftest import recap
from tests.lab.fleet.releases import bump_patch, source_with_version
from tests.lab.fleet.unreachable import CutOffWhen, reconnect, run_playbook_within

UPGRADE = "playbooks/upgrade.yml"
ROLLBACK = "playbooks/rollback.yml"
# Pre-flight, registry, the first agent and ssh giving up on the cut-off host took 160 s on two
# busy CPUs (load 5); a playbook still running at the deadline is killed and the test fails.
PLAYBOOK_DEADLINE = 300
HEALTHY_AGAIN_SECONDS = 90


@dataclass(frozen=True)
class Rollout:
    old: str
    new: str
    first: str  # upgraded before the cut
    cut: str  # unreachable when its turn comes
    after: list[str]  # never reached


@pytest.fixture
def rollout(fleet: Any) -> Iterator[Rollout]:
    """The names and versions of the scenario; teardown puts the fleet back on the old version."""
    first, cut, *after = fleet.lab.groups["agents"]
    assert after, "the scenario needs at least three agents"
    plan = Rollout(fleet.version, bump_patch(fleet.version, 3), first, cut, after)
    try:
        yield plan
    finally:
        reconnect(fleet.lab.name, cut)
        put_back(fleet, plan)


def put_back(fleet: Any, plan: Rollout) -> None:
    wait_until_healthy(fleet, plan.cut, plan.old)
    # No traffic: a longer analysis than the window would only wait.
    run = fleet.playbook(
        "-e", f"mesh_agent_version={plan.old}", "-e", "mesh_upgrade_analysis_max_seconds=10",
        playbook=ROLLBACK,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:]
    agents = fleet.lab.groups["agents"]
    assert served_versions(fleet, agents) == dict.fromkeys(agents, plan.old)
    assert registry_versions(fleet, agents) == dict.fromkeys(agents, plan.old)


def get(fleet: Any, name: str, path: str) -> tuple[int, Any]:
    """GET `path` of agent `name`'s own listener -> (status, JSON body or None)."""
    try:
        with fleet.urlopen(fleet.agent_url(name, path), timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None


def served_versions(fleet: Any, names: list[str]) -> dict[str, str]:
    return {name: get(fleet, name, "/health")[1]["version"] for name in names}


def registry_versions(fleet: Any, names: list[str]) -> dict[str, str | None]:
    """The version the registry lists each agent healthy with (None: not listed healthy)."""
    healthy = {agent["name"]: agent["version"] for agent in fleet.registry_agents(status="healthy")}
    return {name: healthy.get(name) for name in names}


def current_release(host: Any) -> str:
    return str(host.file("/opt/mcp-mesh/current").linked_to).rsplit("/", 1)[-1]


def started_at(host: Any) -> str:
    return str(
        host.check_output("systemctl show -P ActiveEnterTimestampMonotonic mcp-mesh-sdk.service")
    )


def is_healthy(fleet: Any, name: str, version: str) -> bool:
    try:
        ready, _ = get(fleet, name, "/ready")
        return (
            ready == 200
            and served_versions(fleet, [name])[name] == version
            and registry_versions(fleet, [name])[name] == version
        )
    except OSError:
        return False


def wait_until_healthy(fleet: Any, name: str, version: str) -> float:
    """Seconds until the agent is ready and listed healthy on `version`; fails after a while."""
    started = time.monotonic()
    while not is_healthy(fleet, name, version):
        if time.monotonic() - started > HEALTHY_AGAIN_SECONDS:
            pytest.fail(f"{name} not healthy on {version} after {HEALTHY_AGAIN_SECONDS} s")
        time.sleep(1)
    return time.monotonic() - started


def test_a_host_unreachable_mid_rollout_stops_it_and_the_hosts_done_stay_upgraded(
    fleet: Any, rollout: Rollout, lab_host: Any, tmp_path: Any
) -> None:
    agents = fleet.lab.groups["agents"]
    assert served_versions(fleet, agents) == dict.fromkeys(agents, rollout.old)
    untouched_since = {name: started_at(lab_host(name)) for name in rollout.after}
    source = source_with_version(fleet.source, tmp_path, rollout.new)

    def first_agent_upgraded() -> bool:
        return served_versions(fleet, [rollout.first])[rollout.first] == rollout.new

    started = time.monotonic()
    with CutOffWhen(fleet.lab.name, rollout.cut, first_agent_upgraded) as cutter:
        try:
            run = run_playbook_within(
                fleet.lab,
                PLAYBOOK_DEADLINE,
                UPGRADE,
                *fleet.extra_args,
                "-e",
                f"mesh_common_source_dir={source}",
                "-e",
                f"mesh_agent_version={rollout.new}",
            )
        finally:
            reconnect(fleet.lab.name, rollout.cut)
    ended = time.monotonic()

    assert cutter.cut_at is not None, f"{rollout.first} never served {rollout.new}"
    assert run is not None, (
        f"upgrade.yml still ran {ended - cutter.cut_at:.0f} s after {rollout.cut} became "
        f"unreachable (killed at the {PLAYBOOK_DEADLINE} s deadline): it hangs instead of stopping"
    )
    after_cut, in_all = ended - cutter.cut_at, ended - started
    print(f"\nupgrade stopped {after_cut:.1f} s after the cut, {in_all:.1f} s in all")

    assert run.returncode != 0, run.stdout[-6000:]
    assert re.search(rf"\[{rollout.cut}\]: UNREACHABLE!", run.stdout), run.stdout[-6000:]
    counts = recap(run.stdout)
    assert counts[rollout.cut]["unreachable"] >= 1, run.stdout[-3000:]
    for name in rollout.after:  # pre-flight reached them; the rollout never did
        assert counts[name]["unreachable"] == counts[name]["failed"] == 0, run.stdout[-3000:]

    # The host done before the cut stays on the new version, healthy.
    assert served_versions(fleet, [rollout.first]) == {rollout.first: rollout.new}
    assert current_release(lab_host(rollout.first)) == rollout.new
    assert get(fleet, rollout.first, "/ready")[0] == 200
    assert registry_versions(fleet, [rollout.first]) == {rollout.first: rollout.new}

    # The hosts after the cut were never switched nor restarted.
    for name in rollout.after:
        assert served_versions(fleet, [name]) == {name: rollout.old}
        assert current_release(lab_host(name)) == rollout.old
        assert started_at(lab_host(name)) == untouched_since[name], f"{name} was restarted"

    # Back on the network, the cut-off host is healthy on the old version: it was never switched.
    seconds = wait_until_healthy(fleet, rollout.cut, rollout.old)
    print(f"{rollout.cut} healthy again {seconds:.1f} s after its network came back")
    assert current_release(lab_host(rollout.cut)) == rollout.old

"""Releases: a new version is installed beside the old, `current` switches, old ones are pruned.

Runs on one agent with copies of the session's source tree whose version is changed, the way
an upgrade builds its new release; the agent ends on the session's version again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.lab.fleet.releases import PACKAGE, source_with_version

HOST = "agent1"
RELEASES = "/opt/mcp-mesh/releases"


def deploy(fleet: Any, source: Path) -> None:
    run = fleet.playbook(
        "--limit",
        HOST,
        "-e",
        f"mesh_common_source_dir={source}",
        "-e",
        "mesh_agent_keep_releases=2",
    )
    assert run.returncode == 0, run.stdout[-5000:]


def releases_on(host: Any) -> set[str]:
    return set(host.check_output(f"ls -1 {RELEASES}").split())


def links_on(host: Any) -> tuple[str, str]:
    current = host.file("/opt/mcp-mesh/current").linked_to
    previous = host.file("/opt/mcp-mesh/previous").linked_to
    return current.rsplit("/", 1)[-1], previous.rsplit("/", 1)[-1]


def served_version(fleet: Any) -> str:
    with fleet.urlopen(fleet.agent_url(HOST, "/health")) as response:
        return str(json.loads(response.read())["version"])


def test_upgrade_switches_current_keeps_previous_and_prunes_beyond_the_limit(
    fleet: Any, lab_host: Any, tmp_path: Path
) -> None:
    host = lab_host(HOST)
    session_source = fleet.source
    first, second = f"{fleet.version}.post1", f"{fleet.version}.post2"

    # A check run of a new version reports its install as a change and changes nothing (its
    # release is not there to point at yet: the switch is skipped, the prune still judged).
    layout = "readlink /opt/mcp-mesh/current /opt/mcp-mesh/previous; ls -1 " + RELEASES
    before = host.run(layout).stdout
    first_source = source_with_version(session_source, tmp_path, first)
    run = fleet.playbook("--check", "--limit", HOST, "-e", f"mesh_common_source_dir={first_source}")
    assert run.returncode == 0, run.stdout[-5000:]
    assert f"Install release {first}]" in run.stdout, run.stdout[-5000:]
    assert re.search(rf"{HOST}\s+: ok=\d+\s+changed=[1-9]", run.stdout), run.stdout[-5000:]
    assert host.run(layout).stdout == before

    deploy(fleet, first_source)
    assert links_on(host) == (first, fleet.version)
    assert served_version(fleet) == first

    deploy(fleet, source_with_version(session_source, tmp_path, second))
    assert links_on(host) == (second, first)
    # keep 2: the session's release, neither current nor previous now, is the one removed
    assert releases_on(host) == {first, second}
    assert served_version(fleet) == second

    deploy(fleet, session_source)  # back to the session's version: installed afresh
    assert links_on(host) == (fleet.version, second)
    assert releases_on(host) == {fleet.version, second}
    assert served_version(fleet) == fleet.version


def test_a_rebuild_of_the_same_version_is_installed_into_its_virtualenv_without_pip(
    fleet: Any, lab_host: Any, tmp_path: Path
) -> None:
    """A changed source that keeps its version (a development rebuild) is installed into the
    release's virtualenv, which gets pip back for it and keeps none afterwards, as a fresh one."""
    host = lab_host(HOST)
    release = f"{RELEASES}/{fleet.version}"
    for agent in fleet.lab.groups["agents"]:  # the host that built the virtualenv and its peers
        assert not lab_host(agent).file(f"{release}/venv/bin/pip").exists, agent
    build_before = host.file(f"{release}/.mesh-build").content_string
    rebuilt = source_with_version(fleet.source, tmp_path, fleet.version)
    constants = rebuilt / PACKAGE / "constants.py"
    constants.write_text(constants.read_text() + '\nREBUILD_MARK = "lab rebuild"\n')
    try:
        deploy(fleet, rebuilt)
        assert host.file(f"{release}/.mesh-build").content_string != build_before
        probe = "import mcp_mesh_sdk.constants as c; print(c.REBUILD_MARK)"
        assert host.check_output(f"{release}/venv/bin/python -c '{probe}'") == "lab rebuild"
        assert not host.file(f"{release}/venv/bin/pip").exists
        assert served_version(fleet) == fleet.version
    finally:
        deploy(fleet, fleet.source)  # the session's build again
    assert host.file(f"{release}/.mesh-build").content_string == build_before

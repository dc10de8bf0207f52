"""A second run of mcp_mesh.ops.site from the installed collection (the fleet was deployed from
it) changes nothing; so does a check run with --diff of the checkout's playbooks/site.yml, which
shows no secret: a clone and the collection deploy the same fleet."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.collection import REPO
from tests.lab.fleet.conftest import recap


def assert_nothing_changed(output: str) -> None:
    counts = recap(output)
    assert counts, output[-3000:]
    changed = {host: c for host, c in counts.items() if c["changed"] or c["failed"]}
    assert changed == {}, output[-6000:]


def task_output(output: str, kind: str, name: str) -> str:
    """What the default callback printed under the task (kind TASK or RUNNING HANDLER) `name`,
    a role's task as "role : task" (a collection's role is printed with its namespace)."""
    header = re.compile(rf"^{kind} \[(?:\w+\.\w+\.)?{re.escape(name)}\]", re.MULTILINE)
    found = header.search(output)
    assert found, f"no {kind} [{name}] in the output"
    following = re.compile(r"^(?:TASK|RUNNING HANDLER|PLAY) \[", re.MULTILINE)
    end = following.search(output, found.end())
    return output[found.start() : end.start() if end else len(output)]


def test_the_first_deploy_started_each_agent_once(fleet: Any) -> None:
    """On a fresh host the agent's role enables and starts it; its restart handler, notified by
    the new env file, unit and release, skips it instead of starting it a second time."""
    output = fleet.first_run.stdout
    agents = fleet.lab.groups["agents"]
    if not any(recap(output)[agent]["changed"] for agent in agents):
        pytest.skip("the lab was reused: the session's first run deployed nothing new")
    started = task_output(output, "TASK", "mesh_common : Enable and start the service - agent")
    handler = task_output(output, "RUNNING HANDLER", "mesh_agent : Restart the agent")
    for agent in agents:
        assert f"changed: [{agent}]" in started, started
        assert f"skipping: [{agent}]" in handler and f"changed: [{agent}]" not in handler, handler


def test_a_second_run_from_the_installed_collection_changes_nothing(fleet: Any) -> None:
    """README "Installing the collection": `ansible-playbook mcp_mesh.ops.site -i INVENTORY`,
    run where no ansible.cfg, roles_path or collections path leads to the checkout."""
    config = (fleet.collection.workdir / "ansible.cfg").read_text()
    assert str(REPO) not in config and not fleet.collection.workdir.is_relative_to(REPO)
    run = fleet.collection_playbook()
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert_nothing_changed(run.stdout)


def test_check_mode_with_diff_changes_nothing_and_prints_no_secret(fleet: Any) -> None:
    run = fleet.playbook("--check", "--diff")
    assert run.returncode == 0, run.stdout[-6000:]
    assert_nothing_changed(run.stdout)
    for kind, token in fleet.tokens.items():
        assert token not in run.stdout + run.stderr, f"the {kind} token was printed"
    for name, token in fleet.clients.items():
        assert token not in run.stdout + run.stderr, f"client {name}'s token was printed"
    for name, key in host_keys(fleet).items():
        assert key not in run.stdout + run.stderr, f"{name}'s TLS key was printed"


def host_keys(fleet: Any) -> dict[str, str]:
    """Each host's TLS private key as the lab's inventory has it (the body, without the armour)."""
    hosts = yaml.safe_load(fleet.lab.inventory.read_text())["all"]["hosts"]
    return {
        name: "".join(values["mesh_common_tls_key"].splitlines()[1:-1])[:40]
        for name, values in hosts.items()
        if values.get("mesh_common_tls_key")
    }


def test_check_mode_diff_reports_a_pending_change_without_its_secret(fleet: Any) -> None:
    """A changed token is reported as a change of agent.env, but its value is never shown."""
    new_token = "check-mode-token-" + "x" * 24
    run = fleet.playbook(
        "--check", "--diff", "--limit", "agent1", "-e", f"mesh_agent_token={new_token}"
    )
    assert run.returncode == 0, run.stdout[-6000:]
    assert recap(run.stdout)["agent1"]["changed"] > 0
    assert "/agent.env: changed, (secret: its content is not shown)" in run.stdout
    assert new_token not in run.stdout + run.stderr
    assert fleet.tokens["agent"] not in run.stdout + run.stderr


def test_check_mode_diff_reports_a_new_backup_identity_without_showing_it(fleet: Any) -> None:
    """A rotated identity is reported as a change of backup.key, its value never shown."""
    import pyrage

    new_identity = str(pyrage.x25519.Identity.generate())
    run = fleet.playbook(
        "--check", "--diff", "--limit", "agent1", "-e", f"mesh_agent_backup_identity={new_identity}"
    )
    assert run.returncode == 0, run.stdout[-6000:]
    assert recap(run.stdout)["agent1"]["changed"] > 0
    assert "/backup.key: changed, (secret: its content is not shown)" in run.stdout
    assert new_identity not in run.stdout + run.stderr
    assert new_identity.lower() not in (run.stdout + run.stderr).lower()
    assert fleet.tokens["backup_identity"] not in run.stdout + run.stderr

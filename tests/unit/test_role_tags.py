"""Two-tier tags: `--tags mesh_<role>_<stage>` selects that role's stage and nothing else.

Every role task carries the generic tag of its stage (install, configure, run) and the role's own
(mesh_agent_configure, ...). `ansible-playbook --list-tasks` shows what a tag would run without
contacting a host. The roles' argument checks are tagged `always` by Ansible and change nothing;
they are left out of the comparison.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "tests" / "golden" / "inventory.yml"
ARGUMENT_CHECK = "Validating arguments against arg spec"


def listed_tasks(tags: str) -> dict[str, list[str]]:
    """{play name: ["role : task", ...]} that `site.yml --tags <tags>` would run."""
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i", str(INVENTORY), "playbooks/site.yml", "--list-tasks", "--tags", tags,
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    plays: dict[str, list[str]] = {}
    play = ""
    for line in done.stdout.splitlines():
        if line.strip().startswith("play #"):
            play = line.split("): ", 1)[1].split("\tTAGS:")[0].strip()
            plays[play] = []
        elif "\tTAGS: [" in line and ARGUMENT_CHECK not in line:
            plays[play].append(line.split("\tTAGS:")[0].strip())
    return {name: tasks for name, tasks in plays.items() if tasks}


PREFLIGHT = [
    "mesh_common : Check that mesh_common's service pieces are called from a service role",
    "mesh_common : Check the settings that argument specs cannot",
]
# mesh_common's configure.yml: in one step the TLS files (the CA and the host's certificate,
# before the env file that names them), the service's directories and files, then the restart
# when the env file or a unit changed.
CONFIGURE = [
    "mesh_common : Write the TLS files, directories, config files, env file and units, each"
    " checked before it replaces the old one - {{ mesh_common_service.name }}",
    "mesh_common : Restart the service when its env file or a unit changed"
    " - {{ mesh_common_service.name }}",
]


AGENT_CLIENTS = ["mesh_agent : Warn that a token shared by every client is deprecated"]


# The registry's database migrations run with its configuration too: a new database URL
# must find the schema in place before the replicas restart on it.
REGISTRY_DATABASE = [
    "mesh_registry : Read where the registry database stands against release"
    " {{ mesh_common_release_version | default('') }}",
    "mesh_registry : Apply the registry database's SQL migrations, once for every replica",
]


@pytest.mark.parametrize(
    ("tag", "play", "own", "after"),
    [
        ("mesh_agent_configure", "Deploy the agents", AGENT_CLIENTS, []),
        ("mesh_registry_configure", "Deploy the registry", [], REGISTRY_DATABASE),
    ],
)
def test_a_role_configure_tag_lists_only_that_roles_configuration(
    tag: str, play: str, own: list[str], after: list[str]
) -> None:
    assert listed_tasks(tag) == {play: PREFLIGHT + own + CONFIGURE + after}


def test_the_load_balancer_configure_tag_writes_only_haproxy_cfg_and_its_tls_files() -> None:
    assert listed_tasks("mesh_loadbalancer_configure") == {
        "Deploy the load balancer": [
            *PREFLIGHT,
            "mesh_loadbalancer : Create the folder of the load balancer's certificates",
            "mesh_loadbalancer : Write the configuration that test-loads a new certificate"
            " or CA file",
            "mesh_loadbalancer : Write the CA file the agents' certificates are verified against",
            "mesh_loadbalancer : Write the load balancer's certificate and key,"
            " loaded by haproxy -c before they replace the old ones",
            "mesh_loadbalancer : Stop when HAProxy cannot load the certificate and key"
            " (the old ones stay)",
            "mesh_loadbalancer : Write haproxy.cfg,"
            " checked with haproxy -c before it replaces the old one",
            "mesh_loadbalancer : Remove the TLS files when TLS is off",
            "mesh_loadbalancer : Warn that with one token shared by every client no client is"
            " promised to read its own writes",
        ]
    }


def test_the_generic_configure_tag_still_reaches_every_role() -> None:
    plays = listed_tasks("configure")
    for play in ("Deploy the registry", "Deploy the agents", "Deploy the load balancer"):
        assert set(PREFLIGHT) <= set(plays[play])


def test_the_agent_run_tag_starts_the_agent_and_its_backup_timer_without_installing() -> None:
    tasks = listed_tasks("mesh_agent_run")
    assert list(tasks) == ["Deploy the agents"]
    assert tasks["Deploy the agents"] == [
        *PREFLIGHT,
        "mesh_common : Enable and start the service - {{ mesh_common_service.name }}",
        "mesh_common : Apply the pending restarts - {{ mesh_common_service.name }}",
        "mesh_common : Forget which unit this run started - {{ mesh_common_service.name }}",
        "mesh_common : Write the backup identity, the timer and the job it starts"
        " - {{ mesh_common_timer.name }}",
        "mesh_common : Enable and start the timer - {{ mesh_common_timer.name }}",
    ]

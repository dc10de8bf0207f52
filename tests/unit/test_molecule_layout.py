"""Every public role has a molecule scenario (molecule/<role>/) that tests it alone on its own lab
host: converge, idempotence, testinfra verify; scenario default owns the one shared lab.
mesh_common is internal (prometheus-community's `_common`): the other roles exercise it."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MOLECULE = REPO / "molecule"
INTERNAL_ROLES = ("mesh_common",)
PUBLIC_ROLES = sorted(
    path.name
    for path in (REPO / "roles").iterdir()
    if (path / "tasks").is_dir() and path.name not in INTERNAL_ROLES
)


BASE_CONFIG = REPO / ".config" / "molecule" / "config.yml"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def merged(scenario: str) -> dict:
    """A scenario's config as molecule reads it: molecule.yml merged over the base config."""

    def merge(base: dict, over: dict) -> dict:
        out = dict(base)
        for key, value in over.items():
            both = isinstance(value, dict) and isinstance(base.get(key), dict)
            out[key] = merge(base[key], value) if both else value
        return out

    return merge(load(BASE_CONFIG), load(MOLECULE / scenario / "molecule.yml"))


def test_the_public_roles_are_the_five_service_roles() -> None:
    assert PUBLIC_ROLES == [
        "mesh_agent",
        "mesh_database",
        "mesh_loadbalancer",
        "mesh_monitoring",
        "mesh_registry",
    ]


def test_each_public_role_has_a_scenario_of_its_own_and_no_other_does() -> None:
    scenarios = sorted(path.parent.name for path in MOLECULE.glob("*/molecule.yml"))
    assert scenarios == ["default", *PUBLIC_ROLES]


def test_each_scenario_converges_only_its_role_on_a_host_no_other_scenario_uses() -> None:
    hosts = {}
    for role in PUBLIC_ROLES:
        plays = load(MOLECULE / role / "converge.yml")
        assert len(plays) == 1
        assert [entry["role"] for entry in plays[0]["roles"]] == [role]
        hosts[role] = plays[0]["hosts"]
        verifier = merged(role)["verifier"]
        assert verifier["name"] == "testinfra"
        assert verifier["options"]["hosts"] == hosts[role]
        assert list((MOLECULE / role / "tests").glob("test_*.py"))
    assert len(set(hosts.values())) == len(PUBLIC_ROLES), hosts


def test_the_scenarios_share_one_lab_that_default_creates_and_destroys() -> None:
    default = merged("default")
    assert default["shared_state"] is True
    assert default["scenario"]["test_sequence"] == ["create", "destroy"]
    for role in PUBLIC_ROLES:
        config = merged(role)
        assert config["shared_state"] is True
        assert config["prerun"] is False  # no install of the repo over collections/
        assert config["driver"]["name"] == "default"  # delegated: the lab's CLI makes the hosts
        sequence = config["scenario"]["test_sequence"]
        assert sequence.index("converge") < sequence.index("idempotence") < sequence.index("verify")

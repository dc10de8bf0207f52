"""Lab names, hosts, groups, subnets and interface names."""

import json
from ipaddress import IPv4Address, IPv4Network

import pytest

from lab.errors import LabError
from lab.state import LabPaths, load_topology, save_topology
from lab.topology import (
    SUBNET_POOL,
    allocate_subnet,
    build_topology,
    parse_distros,
    validate_agent_count,
    validate_lab_name,
)


def test_default_topology_has_the_load_balancer_and_agents_in_their_groups() -> None:
    topology = build_topology("mesh", 3, IPv4Network("10.231.7.0/24"))
    assert [host.name for host in topology.hosts] == ["lb1", "agent1", "agent2", "agent3"]
    assert topology.groups() == {
        "loadbalancer": ["lb1"],
        "registry": ["lb1"],
        "agents": ["agent1", "agent2", "agent3"],
        "database": [],
        "monitoring": [],
    }


def test_addresses_are_distinct_inside_the_subnet_and_not_the_controllers() -> None:
    subnet = IPv4Network("10.231.7.0/24")
    topology = build_topology("mesh", 12, subnet)
    addresses = [host.address for host in topology.hosts]
    assert len(set(addresses)) == 13
    assert all(address in subnet for address in addresses)
    assert topology.controller == IPv4Address("10.231.7.1")
    assert topology.controller not in addresses
    assert topology.host("lb1").address == IPv4Address("10.231.7.10")


def test_interface_names_fit_the_kernels_limit_for_the_longest_names() -> None:
    topology = build_topology("abcdefgh", 64, IPv4Network("10.231.7.0/24"))
    names = [topology.bridge] + [topology.veth(host) for host in topology.hosts]
    assert max(len(name) for name in names) <= 15
    assert len(set(names)) == len(names)


def test_one_labs_names_are_not_a_prefix_match_for_anothers() -> None:
    one = build_topology("mesh", 1, IPv4Network("10.231.7.0/24"))
    other = build_topology("mesh2", 1, IPv4Network("10.231.8.0/24"))
    assert not other.veth(other.hosts[0]).startswith(one.veth(one.hosts[0]))
    assert not other.netns(other.hosts[0]).startswith("mesh-lab-mesh-")


@pytest.mark.parametrize("name", ["", "Mesh", "1lab", "mesh-two", "toolongname", "a b", "../x"])
def test_unsafe_lab_names_are_refused(name: str) -> None:
    with pytest.raises(LabError, match="not allowed"):
        validate_lab_name(name)


@pytest.mark.parametrize("count", [0, -1, 65])
def test_agent_count_outside_the_supported_range_is_refused(count: int) -> None:
    with pytest.raises(LabError, match="--agents"):
        validate_agent_count(count)


def test_subnet_is_stable_for_a_name_and_differs_between_names() -> None:
    assert allocate_subnet("mesh", []) == allocate_subnet("mesh", [])
    assert allocate_subnet("mesh", []) != allocate_subnet("other", [])
    assert allocate_subnet("mesh", []).subnet_of(SUBNET_POOL)


def test_subnet_skips_networks_already_routed_but_not_the_default_route() -> None:
    first = allocate_subnet("mesh", [])
    taken = [IPv4Network("0.0.0.0/0"), first]
    second = allocate_subnet("mesh", taken)
    assert second != first
    assert not second.overlaps(first)


def test_a_route_covering_the_whole_pool_is_a_clear_error() -> None:
    with pytest.raises(LabError, match="already routed"):
        allocate_subnet("mesh", [IPv4Network("10.0.0.0/8")])


def test_agents_take_the_listed_releases_in_turn_and_lb1_the_first() -> None:
    topology = build_topology(
        "mesh", 3, IPv4Network("10.231.7.0/24"), agent_distros=("bookworm", "trixie")
    )
    assert {host.name: host.distro for host in topology.hosts} == {
        "lb1": "bookworm",
        "agent1": "bookworm",
        "agent2": "trixie",
        "agent3": "bookworm",
    }
    assert topology.distros == ("bookworm", "trixie")


def test_without_a_list_every_host_runs_bookworm() -> None:
    topology = build_topology("mesh", 2, IPv4Network("10.231.7.0/24"))
    assert {host.distro for host in topology.hosts} == {"bookworm"}
    assert topology.distros == ("bookworm",)


def test_a_single_release_puts_every_host_on_it() -> None:
    topology = build_topology("mesh", 2, IPv4Network("10.231.7.0/24"), agent_distros=("trixie",))
    assert {host.distro for host in topology.hosts} == {"trixie"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("bookworm,trixie", ("bookworm", "trixie")),
        (" trixie , bookworm ", ("trixie", "bookworm")),
        ("", ("bookworm",)),
        (None, ("bookworm",)),
    ],
)
def test_release_lists_are_parsed(spec: str | None, expected: tuple[str, ...]) -> None:
    assert parse_distros(spec) == expected


@pytest.mark.parametrize("spec", ["bookworm,sid", "Trixie", "bookworm,,trixie", "debian13"])
def test_unknown_releases_are_refused_naming_the_known_ones(spec: str) -> None:
    with pytest.raises(LabError, match="use a comma-separated list of bookworm, trixie"):
        parse_distros(spec)


def test_build_topology_refuses_an_unknown_release() -> None:
    with pytest.raises(LabError, match="unknown releases sid"):
        build_topology("mesh", 1, IPv4Network("10.231.7.0/24"), agent_distros=("sid",))


def test_the_recorded_topology_keeps_each_hosts_release(tmp_path) -> None:
    paths = LabPaths("mesh", root=tmp_path, lock_root=tmp_path / "locks")
    paths.directory.mkdir(parents=True)
    topology = build_topology(
        "mesh", 2, IPv4Network("10.231.7.0/24"), agent_distros=("bookworm", "trixie")
    )
    save_topology(paths, topology, {"bookworm": tmp_path / "b", "trixie": tmp_path / "t"})
    assert load_topology(paths) == topology
    assert json.loads(paths.topology.read_text())["bases"] == {
        "bookworm": str(tmp_path / "b"),
        "trixie": str(tmp_path / "t"),
    }


def test_a_topology_recorded_before_releases_mixed_reads_as_bookworm(tmp_path) -> None:
    paths = LabPaths("mesh", root=tmp_path, lock_root=tmp_path / "locks")
    paths.directory.mkdir(parents=True)
    paths.topology.write_text(
        json.dumps(
            {
                "lab": "mesh",
                "subnet": "10.231.7.0/24",
                "base": "/var/cache/mcp-mesh-lab/base-x",
                "hosts": [{"name": "lb1", "address": "10.231.7.10", "groups": [], "index": 1}],
            }
        )
    )
    loaded = load_topology(paths)
    assert loaded is not None
    assert loaded.hosts[0].distro == "bookworm"


def test_a_database_lab_adds_db1_last_on_bookworm_as_a_second_registry() -> None:
    plain = build_topology("mesh", 2, IPv4Network("10.231.7.0/24"), agent_distros=("trixie",))
    topology = build_topology(
        "mesh", 2, IPv4Network("10.231.7.0/24"), agent_distros=("trixie",), database=True
    )
    db1 = topology.host("db1")
    assert db1.distro == "bookworm"  # PostgreSQL 15 is Debian 12's
    assert topology.groups()["database"] == ["db1"]
    assert topology.groups()["registry"] == ["lb1", "db1"]
    # the other hosts keep the addresses they have in a lab without a database
    assert topology.hosts[:-1] == plain.hosts
    assert topology.distros == ("bookworm", "trixie")


def test_a_lab_without_a_database_has_an_empty_database_group() -> None:
    topology = build_topology("mesh", 1, IPv4Network("10.231.7.0/24"))
    assert topology.groups()["database"] == []
    assert [host.name for host in topology.hosts] == ["lb1", "agent1"]


def test_monitoring_goes_to_db1_when_the_lab_has_one_and_moves_no_host() -> None:
    plain = build_topology("mesh", 1, IPv4Network("10.231.7.0/24"), database=True)
    topology = build_topology(
        "mesh", 1, IPv4Network("10.231.7.0/24"), ("trixie",), database=True, monitoring=True
    )
    assert topology.groups()["monitoring"] == ["db1"]
    assert [(h.name, h.address) for h in topology.hosts] == [
        (h.name, h.address) for h in plain.hosts
    ]


def test_monitoring_on_a_trixie_lb1_is_refused_with_the_way_out() -> None:
    with pytest.raises(LabError, match="--database"):
        build_topology("mesh", 1, IPv4Network("10.231.7.0/24"), ("trixie",), monitoring=True)


def test_monitoring_puts_lb1_in_the_monitoring_group_and_moves_no_host() -> None:
    plain = build_topology("mesh", 1, IPv4Network("10.231.7.0/24"))
    assert plain.groups()["monitoring"] == []  # listed, empty: site.yml's monitoring play skips
    topology = build_topology("mesh", 1, IPv4Network("10.231.7.0/24"), monitoring=True)
    assert topology.groups()["monitoring"] == ["lb1"]
    assert [(h.name, h.address) for h in topology.hosts] == [
        (h.name, h.address) for h in plain.hosts
    ]

"""What `up` writes into each host's root: names, hosts file, keys."""

import stat
from ipaddress import IPv4Network

from lab.hostroot import personalise, render_hosts_file
from lab.topology import build_topology


def topology():
    return build_topology("mesh", 2, IPv4Network("10.231.7.0/24"))


def test_hosts_file_names_every_host_and_the_controller() -> None:
    text = render_hosts_file(topology())
    entries = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    assert ["10.231.7.10", "lb1"] in entries
    assert ["10.231.7.12", "agent2"] in entries
    assert ["10.231.7.1", "lab-controller"] in entries
    assert ["127.0.0.1", "localhost"] in entries
    named = [entry for entry in entries if "agent1" in entry[1:]]
    assert named == [["10.231.7.11", "agent1"]]  # no 127.0.1.1 alias shadowing the address


def test_personalise_writes_identity_and_access(tmp_path) -> None:
    (tmp_path / "etc" / "ssh").mkdir(parents=True)
    host = topology().host("agent1")
    personalise(tmp_path, host, topology(), "ssh-ed25519 AAAAkey lab\n")
    assert (tmp_path / "etc/hostname").read_text() == "agent1\n"
    assert len((tmp_path / "etc/machine-id").read_text().strip()) == 32
    authorized = tmp_path / "root/.ssh/authorized_keys"
    assert authorized.read_text() == "ssh-ed25519 AAAAkey lab\n"
    assert stat.S_IMODE((tmp_path / "root/.ssh").stat().st_mode) == 0o700
    assert "root@agent1" in (tmp_path / "etc/ssh/ssh_host_ed25519_key.pub").read_text()


def test_every_host_gets_its_own_machine_id_and_host_key(tmp_path) -> None:
    keys, ids = set(), set()
    for host in topology().hosts:
        root = tmp_path / host.name
        (root / "etc" / "ssh").mkdir(parents=True)
        personalise(root, host, topology(), "ssh-ed25519 AAAAkey lab")
        keys.add((root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[1])
        ids.add((root / "etc/machine-id").read_text())
    assert len(keys) == len(ids) == len(topology().hosts)

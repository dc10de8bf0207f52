"""mesh-ops reads inventories through ansible-inventory: the example production inventory (a
directory with group_vars and a vault) gives the hosts, users and become Ansible gives, and
commands run on the hosts as that user, through sudo when become is set."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from invoke.exceptions import AuthFailure

from mesh_ops import inventory as inventory_module
from mesh_ops.cli import main
from mesh_ops.inventory import InventoryError, ansible_environment, load_inventory
from mesh_ops.remote import HostFailed, run

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = REPO / "inventories" / "production"
ANSIBLE_BIN = Path(sys.executable).parent
SECRETS = """\
vault_mesh_registry_token: registry-secret
vault_mesh_agent_token: agent-secret
vault_mesh_agent_secret_key: key-secret
vault_mesh_agent_database_url: sqlite:///x
"""


@pytest.fixture
def production(tmp_path: Path) -> tuple[Path, Path]:
    """The example inventory with its vault re-encrypted under a password the test knows
    (the example's own password was not kept)."""
    copy = tmp_path / "production"
    shutil.copytree(PRODUCTION, copy)
    password = tmp_path / "vault-pass"
    password.write_text("test-password\n")
    vault = copy / "group_vars" / "all" / "vault"
    vault.write_text(SECRETS)
    subprocess.run(
        [ANSIBLE_BIN / "ansible-vault", "encrypt", "--vault-password-file", password, vault],
        check=True, capture_output=True, env=ansible_environment(),
    )  # fmt: skip
    return copy, password


def ansible_inventory_list(path: Path, password: Path) -> dict[str, Any]:
    done = subprocess.run(
        [ANSIBLE_BIN / "ansible-inventory", "-i", path, "--list", "--vault-password-file",
         password],
        check=True, capture_output=True, text=True, env=ansible_environment(),
    )  # fmt: skip
    listed: dict[str, Any] = json.loads(done.stdout)
    return listed


def test_production_inventory_resolves_as_ansible_inventory_says(
    production: tuple[Path, Path],
) -> None:
    path, password = production
    inventory = load_inventory(path, password)
    listed = ansible_inventory_list(path, password)
    hostvars = listed["_meta"]["hostvars"]
    assert set(inventory.hosts) == set(hostvars)
    for name, host in inventory.hosts.items():
        expected = hostvars[name]
        assert host.address == expected["ansible_host"], name
        assert host.user == expected["ansible_user"] == "deploy", name
        assert host.become is expected["ansible_become"] is True, name
        assert host.become_user == "root"
        assert host.become_password is None
    for group in ("agents", "registry", "loadbalancer"):
        assert [h.name for h in inventory.group(group)] == listed[group]["hosts"]
    assert [h.address for h in inventory.group("agents")] == [
        "192.0.2.31",
        "192.0.2.32",
        "192.0.2.33",
    ]


def test_production_inventory_without_the_vault_password_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    assert main(["-i", str(PRODUCTION), "status"]) == 1
    err = capsys.readouterr().err
    assert "ansible-inventory cannot read" in err
    assert "no vault secrets" in err and "--vault-password-file" in err
    assert "Traceback" not in err and "Is a directory" not in err


def test_status_reads_the_production_directory_and_connects_as_deploy_with_sudo(
    production: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from mesh_ops import cli

    asked: list[tuple[str, str | None, bool]] = []

    def on_each(hosts: list[Any], work: Any) -> list[Any]:
        asked.extend((h.name, h.user, h.become) for h in hosts)
        return [(h, None, f"{h.name} ({h.address}) did not answer over SSH: test") for h in hosts]

    monkeypatch.setattr(cli, "on_each", on_each)
    path, password = production
    assert main(["-i", str(path), "--vault-password-file", str(password), "status"]) == 1
    assert asked[:3] == [(f"mesh-agent-{n}.example.internal", "deploy", True) for n in (1, 2, 3)]
    assert asked[3] == ("mesh-lb-1.example.internal", "deploy", True)
    shown = capsys.readouterr()
    assert "secret" not in shown.out + shown.err


BECOME = """
all:
  hosts:
    plain: {ansible_host: 10.0.0.1, ansible_port: 2222}
    sudoer:
      ansible_become: true
      ansible_become_user: mesh
      ansible_become_password: hunter2-secret
"""
TEMPLATED = """
    templated:
      ansible_become: true
      ansible_become_password: "{{ vault_become_password }}"
"""


def write(tmp_path: Path, text: str, name: str = "hosts.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_become_user_and_password_are_taken_and_the_password_never_shown(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, BECOME))
    plain, sudoer = inventory.host("plain"), inventory.host("sudoer")
    assert (plain.address, plain.port, plain.user, plain.become) == ("10.0.0.1", 2222, None, False)
    assert (sudoer.become, sudoer.become_user, sudoer.become_password) == (
        True,
        "mesh",
        "hunter2-secret",
    )
    assert "hunter2" not in repr(sudoer)


def test_a_templated_become_password_is_refused_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="ansible_become_password is a template") as caught:
        load_inventory(write(tmp_path, BECOME + TEMPLATED))
    assert "vault_become_password" not in str(caught.value)


def test_an_ini_inventory_works_like_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "[agents]\na1 ansible_host=10.0.0.5 ansible_user=ops\n", "hosts")
    [host] = load_inventory(path).group("agents")
    assert (host.name, host.address, host.user) == ("a1", "10.0.0.5", "ops")


def test_a_missing_ansible_inventory_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inventory_module, "ansible_command", lambda name: "/nonexistent/" + name)
    with pytest.raises(InventoryError, match="cannot run /nonexistent/ansible-inventory"):
        load_inventory(write(tmp_path, BECOME))


class FakeConnection:
    """Records what would run on the host."""

    def __init__(self, refuse_password: bool = False) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.refuse_password = refuse_password

    def run(self, command: str, **kwargs: Any) -> str:
        self.calls.append(("run", command, kwargs))
        return "ok"

    def sudo(self, command: str, **kwargs: Any) -> str:
        if self.refuse_password:
            raise AuthFailure(result=None, prompt="[sudo] password: ")
        self.calls.append(("sudo", command, kwargs))
        return "ok"


def test_commands_run_as_the_user_and_through_sudo_when_become_is_set(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, BECOME))
    become_without_password = inventory_module.Host(name="b", address="b", become=True)

    plain = FakeConnection()
    run(plain, inventory.host("plain"), "systemctl status x")
    assert plain.calls == [("run", "systemctl status x", {"hide": True})]

    nopasswd = FakeConnection()
    run(nopasswd, become_without_password, "systemctl status x")
    assert nopasswd.calls[0][1] == "sudo -n -H -u root systemctl status x"

    with_password = FakeConnection()
    run(with_password, inventory.host("sudoer"), "systemctl status x")
    [(kind, command, kwargs)] = with_password.calls
    assert (kind, command, kwargs["user"], kwargs["password"]) == (
        "sudo",
        "systemctl status x",
        "mesh",
        "hunter2-secret",
    )

    with pytest.raises(HostFailed, match="sudo refused the become password") as refused:
        run(FakeConnection(refuse_password=True), inventory.host("sudoer"), "true")
    assert "hunter2" not in str(refused.value)

"""The load balancer role's TLS settings and files, run by Ansible on this machine.

The settings: the argument spec accepts the defaults (TLS follows mesh_common_tls_enabled, the
port follows TLS) and the preflight names a missing or misplaced PEM text without showing a key.
The files: configure.yml writes the CA and mesh.pem into a temporary folder, each loaded by the
real `haproxy -c` first; a `systemctl` stand-in on PATH records the reload a change asks for.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_role_templates import make_certificates

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "roles" / "mesh_loadbalancer" / "meta" / "argument_specs.yml"
CA = "-----BEGIN CERTIFICATE-----\nTEST-CA\n-----END CERTIFICATE-----"
CERT = "-----BEGIN CERTIFICATE-----\nTEST-LEAF\n-----END CERTIFICATE-----"
KEY = "-----BEGIN PRIVATE KEY-----\nKEY-NEVER-SHOWN\n-----END PRIVATE KEY-----"
FAKE_SYSTEMCTL = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/systemctl.calls"
case "$*" in
  *show*) printf 'Id=haproxy.service\\nLoadState=loaded\\nActiveState=active\\nSubState=running\\n'
esac
exit 0
"""


def run_play(
    tmp_path: Path,
    tasks: list[dict[str, Any]],
    hosts: dict[str, Any],
    agents: tuple[str, ...] = ("agent1",),
    agent_vars: dict[str, Any] | None = None,
) -> str:
    """Run `tasks` from a service role on `hosts` (local connection) with `agents` as the
    backend group; rc, stdout and stderr."""
    role = tmp_path / "roles" / "svc" / "tasks"  # a service role, as preflight.yml asks for
    role.mkdir(parents=True, exist_ok=True)
    (role / "main.yml").write_text(json.dumps(tasks))
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        json.dumps([{"hosts": "loadbalancer", "gather_facts": False, "roles": ["svc"]}])
    )
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "all": {
            "children": {
                "loadbalancer": {"hosts": {name: {**local, **v} for name, v in hosts.items()}},
                "agents": {
                    "hosts": {
                        name: {"ansible_host": "127.0.0.1", **(agent_vars or {})} for name in agents
                    }
                },
            }
        }
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "systemctl").write_text(FAKE_SYSTEMCTL)
    (bin_dir / "systemctl").chmod(0o755)
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i", str(tmp_path / "inventory.json"), str(playbook),
        ],
        cwd=REPO, capture_output=True, text=True, timeout=180,
        env={
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}:/usr/sbin:/sbin",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": f"{tmp_path / 'roles'}:{REPO / 'roles'}",
        },
    )  # fmt: skip
    return f"rc={done.returncode}\n{done.stdout}\n{done.stderr}"


LOAD_ROLE = {
    "ansible.builtin.import_role": {"name": "mesh_loadbalancer", "tasks_from": "names.yml"}
}


def settings_of(
    tmp_path: Path, hosts: dict[str, Any], agents: tuple[str, ...] = ("agent1",)
) -> tuple[str, dict[str, Any]]:
    """Per host: the port and TLS the role settles on, what the argument spec and the
    preflight refuse."""
    out_dir = tmp_path / "out"
    out_dir.mkdir(parents=True)
    tasks = [
        LOAD_ROLE,
        {
            "ansible.builtin.validate_argument_spec": {
                "argument_spec": yaml.safe_load(SPEC.read_text())["argument_specs"]["main"][
                    "options"
                ]
            },
            "register": "spec",
            "failed_when": False,
        },
        {
            "ansible.builtin.copy": {
                "content": (
                    "{{ {'port': mesh_loadbalancer_port | int, 'tls': _mesh_loadbalancer_tls,"
                    " 'spec': spec.argument_errors | default([]) | join('; '),"
                    " 'refused': _mesh_loadbalancer_checks | rejectattr('ok')"
                    " | map(attribute='msg') | list, 'ids': _mesh_loadbalancer_server_ids}"
                    " | to_json }}"
                ),
                "dest": f"{out_dir}/{{{{ inventory_hostname }}}}.json",
                "mode": "0644",
            },
        },
        {
            "ansible.builtin.import_role": {"name": "mesh_common", "tasks_from": "preflight.yml"},
            "vars": {"mesh_common_checks": "{{ _mesh_loadbalancer_checks }}"},
        },
    ]
    out = run_play(tmp_path, tasks, hosts, agents)
    return out, {p.stem: json.loads(p.read_text()) for p in out_dir.glob("*.json")}


def test_tls_follows_the_mesh_and_the_port_follows_tls(tmp_path: Path) -> None:
    common_tls = {
        "mesh_common_tls_enabled": True,
        "mesh_common_tls_ca_cert": CA,
        "mesh_common_tls_cert": CERT,
        "mesh_common_tls_key": KEY,
    }
    out, found = settings_of(
        tmp_path,
        {
            "plain": {},
            "mesh_tls": common_tls,
            "mesh_tls_port": {**common_tls, "mesh_loadbalancer_port": 8443},
            "own_cert": {
                "mesh_loadbalancer_tls_enabled": True,
                "mesh_loadbalancer_tls_cert": CERT,
                "mesh_loadbalancer_tls_key": KEY,
                "mesh_loadbalancer_tls_ca_cert": CA,
            },
        },
    )
    assert out.startswith("rc=0"), out
    ids = {"agent1": int(hashlib.sha1(b"agent1").hexdigest()[:7], 16)}
    assert found == {
        "plain": {"port": 80, "tls": False, "spec": "", "refused": [], "ids": ids},
        "mesh_tls": {"port": 443, "tls": True, "spec": "", "refused": [], "ids": ids},
        "mesh_tls_port": {"port": 8443, "tls": True, "spec": "", "refused": [], "ids": ids},
        "own_cert": {"port": 443, "tls": True, "spec": "", "refused": [], "ids": ids},
    }
    assert "KEY-NEVER-SHOWN" not in out


def test_preflight_names_a_missing_or_misplaced_pem_and_never_shows_the_key(
    tmp_path: Path,
) -> None:
    on = {"mesh_loadbalancer_tls_enabled": True}
    out, found = settings_of(
        tmp_path,
        {
            "nothing": on,
            "key_in_cert": {
                **on,
                "mesh_loadbalancer_tls_cert": CERT + "\n" + KEY,
                "mesh_loadbalancer_tls_key": KEY,
                "mesh_loadbalancer_tls_ca_cert": CA,
            },
            "not_a_key": {
                **on,
                "mesh_loadbalancer_tls_cert": CERT,
                "mesh_loadbalancer_tls_key": "KEY-NEVER-SHOWN",
                "mesh_loadbalancer_tls_ca_cert": CA,
            },
        },
    )
    assert out.startswith("rc=2"), out

    def refused(host: str) -> list[str]:
        return [
            message.split(" ")[0] + " " + message.split(" ")[1]
            for message in found[host]["refused"]
        ]

    assert refused("nothing") == [
        "mesh_loadbalancer_tls_cert holds",
        "mesh_loadbalancer_tls_key holds",
        "mesh_loadbalancer_tls_ca_cert holds",
    ]
    assert refused("key_in_cert") == ["mesh_loadbalancer_tls_cert holds"]
    assert "holds a private key" in found["key_in_cert"]["refused"][0]
    assert refused("not_a_key") == ["mesh_loadbalancer_tls_key holds"]
    assert "mesh_loadbalancer_tls_key holds no PEM private key" in out  # the play says it too
    assert "KEY-NEVER-SHOWN" not in out


def test_the_argument_spec_refuses_a_balance_without_a_meaning_here(tmp_path: Path) -> None:
    _, found = settings_of(tmp_path, {"uri": {"mesh_loadbalancer_balance": "uri"}})
    assert "mesh_loadbalancer_balance" in found["uri"]["spec"]
    assert "hdr(Authorization)" in found["uri"]["spec"]  # the choices are listed


def test_an_agents_server_id_does_not_depend_on_the_others(tmp_path: Path) -> None:
    # Consistent hashing places a server's clients by its id: an agent leaving the group must
    # not change the others' ids, or their clients would move too (HAProxy's default numbering).
    _, three = settings_of(tmp_path / "a", {"lb": {}}, agents=("agent1", "agent2", "agent3"))
    _, two = settings_of(tmp_path / "b", {"lb": {}}, agents=("agent3", "agent1"))
    ids = three["lb"]["ids"]
    assert len(set(ids.values())) == 3 and all(0 < i < 2**31 for i in ids.values())
    assert two["lb"]["ids"] == {"agent1": ids["agent1"], "agent3": ids["agent3"]}


NEEDS_TOOLS = pytest.mark.skipif(
    os.geteuid() != 0
    or shutil.which("haproxy", path="/usr/sbin:/usr/bin") is None
    or shutil.which("openssl") is None,
    reason="needs root (root-owned files), haproxy and openssl",
)


def write_files(tmp_path: Path, agent_vars: dict[str, Any] | None = None, **host: Any) -> str:
    """configure.yml with its paths under tmp_path/etc; the play's output."""
    etc = tmp_path / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    paths = {
        "_mesh_loadbalancer_tls_dir": f"{etc}/certs",
        "_mesh_loadbalancer_tls_pem": f"{etc}/certs/mesh.pem",
        "_mesh_loadbalancer_tls_ca": f"{etc}/certs/ca.pem",
        "_mesh_loadbalancer_tls_check": f"{etc}/mesh-tls-check.cfg",
        "_mesh_loadbalancer_files": [
            {
                "src": "haproxy.cfg.j2",
                "dest": f"{etc}/haproxy.cfg",
                "mode": "0644",
                "validate": "haproxy -c -f %s",
            }
        ],
    }
    tasks = [
        LOAD_ROLE,
        {
            "ansible.builtin.import_role": {
                "name": "mesh_loadbalancer",
                "tasks_from": "configure.yml",
            },
            "vars": paths,
        },
    ]
    return run_play(tmp_path, tasks, {"lb": host}, agent_vars=agent_vars)


def reloads(tmp_path: Path) -> int:
    calls = tmp_path / "bin" / "systemctl.calls"
    lines = calls.read_text().splitlines() if calls.exists() else []
    return sum(1 for line in lines if line.startswith("reload"))


@NEEDS_TOOLS
def test_certificate_files_are_written_loaded_first_and_a_rotation_reloads(
    tmp_path: Path,
) -> None:
    tls = make_certificates(tmp_path / "pki")
    cert, key, ca = (tls[name].read_text() for name in ("agent1_crt", "agent1_key", "ca"))
    key_body = key.splitlines()[1]
    host = {
        "mesh_loadbalancer_tls_enabled": True,
        "mesh_loadbalancer_tls_cert": cert,
        "mesh_loadbalancer_tls_key": key,
        "mesh_loadbalancer_tls_ca_cert": ca,
        "mesh_loadbalancer_port": 18443,
    }
    out = write_files(tmp_path, **host)
    assert out.startswith("rc=0"), out
    assert key_body not in out
    certs = tmp_path / "etc" / "certs"
    assert (certs / "mesh.pem").read_text() == cert.strip() + "\n" + key.strip() + "\n"
    assert (certs / "ca.pem").read_text() == ca.strip() + "\n"
    pem = (certs / "mesh.pem").stat()
    assert (stat.S_IMODE(pem.st_mode), pem.st_uid) == (0o640, 0)
    assert stat.S_IMODE((certs / "ca.pem").stat().st_mode) == 0o644
    config = (tmp_path / "etc" / "haproxy.cfg").read_text()
    assert f"bind *:18443 ssl crt {certs}/mesh.pem ssl-min-ver TLSv1.2" in config
    assert reloads(tmp_path) == 1

    assert write_files(tmp_path, **host).startswith("rc=0")  # nothing changed: no reload
    assert reloads(tmp_path) == 1

    # Rotation: a new certificate and key for the same name reload HAProxy.
    new = make_certificates(tmp_path / "pki2")
    rotated = {
        **host,
        "mesh_loadbalancer_tls_cert": new["agent1_crt"].read_text(),
        "mesh_loadbalancer_tls_key": new["agent1_key"].read_text(),
    }
    assert write_files(tmp_path, **rotated).startswith("rc=0")
    assert new["agent1_crt"].read_text().strip() in (certs / "mesh.pem").read_text()
    assert reloads(tmp_path) == 2

    # TLS off: haproxy.cfg names no certificate any more and the key is not left behind.
    assert write_files(tmp_path, mesh_loadbalancer_port=18080).startswith("rc=0")
    assert not (certs / "mesh.pem").exists() and not (certs / "ca.pem").exists()
    assert "bind *:18080\n" in (tmp_path / "etc" / "haproxy.cfg").read_text()


@NEEDS_TOOLS
def test_a_key_of_another_certificate_keeps_the_old_files_and_says_why(tmp_path: Path) -> None:
    tls = make_certificates(tmp_path / "pki")
    cert, key, ca = (tls[name].read_text() for name in ("agent1_crt", "agent1_key", "ca"))
    host = {
        "mesh_loadbalancer_tls_enabled": True,
        "mesh_loadbalancer_tls_cert": cert,
        "mesh_loadbalancer_tls_key": key,
        "mesh_loadbalancer_tls_ca_cert": ca,
    }
    assert write_files(tmp_path, **host).startswith("rc=0")
    before = (tmp_path / "etc" / "certs" / "mesh.pem").read_text()
    other_key = tls["other_key"].read_text()
    out = write_files(tmp_path, **{**host, "mesh_loadbalancer_tls_key": other_key})
    assert out.startswith("rc=2"), out
    assert "mesh.pem was not changed" in out
    assert "inconsistencies between private key and certificate" in out
    assert other_key.splitlines()[1] not in out and key.splitlines()[1] not in out
    assert (tmp_path / "etc" / "certs" / "mesh.pem").read_text() == before
    assert reloads(tmp_path) == 1  # only the first, good, run reloaded


SHARED_TOKEN_WARNING = "lists mesh_agent_clients, so every client sends the one shared token"
ONE_AGENT = "sends all of them to one agent"


def balance(tmp_path: Path) -> str:
    config = (tmp_path / "etc" / "haproxy.cfg").read_text()
    lines = [line.split() for line in config.splitlines()]
    return next(words[1] for words in lines if words[:1] == ["balance"])


def one_line(output: str) -> str:
    """The play's output with Ansible's line wrapping undone."""
    return " ".join(output.split())


@NEEDS_TOOLS
def test_the_balance_hashes_clients_only_once_each_has_a_token_of_its_own(tmp_path: Path) -> None:
    # With one shared token every client would hash alike and land on one agent: random stays.
    shared = one_line(write_files(tmp_path / "shared", mesh_loadbalancer_port=18080))
    assert shared.startswith("rc=0") and SHARED_TOKEN_WARNING in shared
    assert ONE_AGENT not in shared and balance(tmp_path / "shared") == "random"
    named = one_line(
        write_files(
            tmp_path / "named",
            agent_vars={"mesh_agent_clients": [{"name": "alice", "token": "t" * 32}]},
            mesh_loadbalancer_port=18080,
        )
    )
    assert named.startswith("rc=0") and SHARED_TOKEN_WARNING not in named
    assert balance(tmp_path / "named") == "hdr(Authorization)"
    forced = one_line(
        write_files(
            tmp_path / "forced",
            mesh_loadbalancer_port=18080,
            mesh_loadbalancer_balance="hdr(Authorization)",
        )
    )
    assert forced.startswith("rc=0") and ONE_AGENT in forced

"""mesh_common's TLS pieces, run by Ansible on this machine against a temporary config directory.

configure.yml writes the CA, then the certificate chain and key in one file that the release's
`check-config --tls-cert` (here a stand-in that records its arguments) accepts before it replaces
the live one, ahead of the service's env file, in its one module run (the stand-in service `svc`
has only an env file); the preflight checks refuse missing or malformed PEM texts without
showing the key; mesh_common_local_url is how the playbooks reach a host's own agent and registry.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.roleplay import run_in_service_role

REPO = Path(__file__).resolve().parents[2]
CA = "-----BEGIN CERTIFICATE-----\nTEST-CA\n-----END CERTIFICATE-----"
CERT = "-----BEGIN CERTIFICATE-----\nTEST-LEAF\n-----END CERTIFICATE-----"
KEY = "-----BEGIN PRIVATE KEY-----\nKEY-NEVER-SHOWN\n-----END PRIVATE KEY-----"
# The stand-in for the release's CLI: logs its arguments, rejects a certificate saying REJECT.
FAKE_CLI = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls"
if grep -q REJECT "$3"; then echo "certificate does not match the key" >&2; exit 1; fi
"""

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the role writes root-owned files (run as root, like the lab)"
)


def run_play(tmp_path: Path, tasks: list[dict[str, Any]], **variables: Any) -> str:
    """Run `tasks` on localhost with mesh_common's paths under tmp_path; stdout (+stderr)."""
    install = tmp_path / "opt"
    cli = install / "current" / "venv" / "bin" / "mcp-mesh-sdk"
    if not cli.exists():
        cli.parent.mkdir(parents=True)
        cli.write_text(FAKE_CLI)
        cli.chmod(0o755)
    (tmp_path / "etc").mkdir(exist_ok=True)
    defaults = {
        "mesh_common_install_dir": str(install),
        "mesh_common_config_dir": str(tmp_path / "etc"),
        "mesh_common_group": "root",
    }
    service = {
        "name": "svc",
        "directories": [],
        "env_file": {"dest": str(tmp_path / "etc" / "svc.env"), "content": "A=1\n",
                     "mode": "0640", "service": "svc"},
        "units": [],
    }  # fmt: skip
    restart = [{"name": "Restart the svc", "ansible.builtin.debug": {"msg": "restarted"}}]
    return run_in_service_role(
        tmp_path, tasks, defaults | {"mesh_common_service": service} | variables, handlers=restart
    )


def tls_checks(tmp_path: Path) -> list[list[str]]:
    """The arguments of each `check-config --tls-cert` the stand-in CLI was run with."""
    calls = (tmp_path / "opt" / "current" / "venv" / "bin" / "calls").read_text().splitlines()
    return [call.split() for call in calls if "--tls-cert" in call]


CONFIGURE = {"name": "mesh_common", "tasks_from": "configure.yml"}
TLS_TASKS = [{"ansible.builtin.import_role": CONFIGURE}]
PREFLIGHT = [
    {
        "ansible.builtin.import_role": {"name": "mesh_common", "tasks_from": "preflight.yml"},
        "vars": {"mesh_common_checks": "{{ _mesh_common_tls_checks }}"},
    }
]


def tls_vars(**overrides: Any) -> dict[str, Any]:
    return {
        "mesh_common_tls_enabled": True,
        "mesh_common_tls_ca_cert": CA,
        "mesh_common_tls_cert": CERT,
        "mesh_common_tls_key": KEY,
        **overrides,
    }


def test_the_ca_and_the_validated_certificate_with_its_key_are_written(tmp_path: Path) -> None:
    out = run_play(tmp_path, TLS_TASKS, **tls_vars())
    assert out.startswith("rc=0"), out
    assert "KEY-NEVER-SHOWN" not in out
    tls = tmp_path / "etc" / "tls"
    assert (tls / "ca.pem").read_text() == CA + "\n"
    assert (tls / "server.pem").read_text() == CERT + "\n" + KEY + "\n"
    assert stat.S_IMODE((tls / "ca.pem").stat().st_mode) == 0o644
    assert stat.S_IMODE((tls / "server.pem").stat().st_mode) == 0o640
    checks = tls_checks(tmp_path)
    assert len(checks) == 1
    words = checks[0]
    assert words[:2] == ["check-config", "--tls-cert"]
    assert words[2] != str(tls / "server.pem")  # the new file, before it replaces the live one
    assert words[3:] == ["--tls-ca", str(tls / "ca.pem")]


def test_a_rejected_certificate_keeps_the_old_one_and_says_why(tmp_path: Path) -> None:
    assert run_play(tmp_path, TLS_TASKS, **tls_vars()).startswith("rc=0")
    bad = CERT.replace("TEST-LEAF", "REJECT")
    out = run_play(tmp_path, TLS_TASKS, **tls_vars(mesh_common_tls_cert=bad))
    assert out.startswith("rc=2"), out
    assert "server.pem was not changed" in out
    assert "certificate does not match the key" in out
    assert "KEY-NEVER-SHOWN" not in out
    assert (tmp_path / "etc" / "tls" / "server.pem").read_text() == CERT + "\n" + KEY + "\n"


def test_nothing_is_written_without_tls_and_turning_it_off_removes_the_key(
    tmp_path: Path,
) -> None:
    out = run_play(tmp_path, TLS_TASKS + PREFLIGHT, mesh_common_tls_enabled=False)
    assert out.startswith("rc=0"), out
    assert not (tmp_path / "etc" / "tls").exists()
    assert run_play(tmp_path, TLS_TASKS, **tls_vars()).startswith("rc=0")
    assert (tmp_path / "etc" / "tls" / "server.pem").exists()
    out = run_play(tmp_path, TLS_TASKS, mesh_common_tls_enabled=False)
    assert out.startswith("rc=0"), out
    assert not (tmp_path / "etc" / "tls").exists()


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"mesh_common_tls_key": ""}, "mesh_common_tls_key"),
        ({"mesh_common_tls_key": "secret-not-a-pem-key"}, "mesh_common_tls_key"),
        ({"mesh_common_tls_key": KEY + "\n" + KEY}, "mesh_common_tls_key"),
        ({"mesh_common_tls_cert": CERT + "\n" + KEY}, "mesh_common_tls_cert"),
        ({"mesh_common_tls_ca_cert": ""}, "mesh_common_tls_ca_cert"),
    ],
)
def test_preflight_names_a_missing_or_malformed_pem_and_never_shows_the_key(
    tmp_path: Path, overrides: dict[str, str], named: str
) -> None:
    out = run_play(tmp_path, PREFLIGHT + TLS_TASKS, **tls_vars(**overrides))
    assert out.startswith("rc=2"), out
    assert f"{named} must be the PEM text" in out
    assert "secret-not-a-pem-key" not in out and "KEY-NEVER-SHOWN" not in out
    assert not (tmp_path / "etc" / "tls").exists()  # stopped before anything changed


def local_endpoint(tmp_path: Path, **variables: Any) -> list[Any]:
    tasks = [
        {"ansible.builtin.import_role": {"name": "mesh_common", "tasks_from": "names.yml"}},
        {
            "ansible.builtin.copy": {
                "content": "{{ [mesh_common_local_url, mesh_common_local_ca_path] | to_json }}",
                "dest": str(tmp_path / "local.json"),
                "mode": "0644",
            }
        },
    ]
    out = run_play(tmp_path, tasks, **variables)
    assert out.startswith("rc=0"), out
    return list(json.loads((tmp_path / "local.json").read_text()))


def test_local_checks_use_tls_at_the_hosts_own_address_or_plain_loopback(tmp_path: Path) -> None:
    ca = str(tmp_path / "etc" / "tls" / "ca.pem")
    assert local_endpoint(tmp_path, mesh_common_tls_enabled=False) == ["http://127.0.0.1", None]
    assert local_endpoint(tmp_path, mesh_common_tls_enabled=True, ansible_host="192.0.2.7") == [
        "https://192.0.2.7",
        ca,
    ]
    assert local_endpoint(tmp_path, mesh_common_tls_enabled=True, ansible_host="fd00::7") == [
        "https://[fd00::7]",
        ca,
    ]

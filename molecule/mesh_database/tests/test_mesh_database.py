"""mesh_database alone on a fresh host: PostgreSQL 15 from packages installed offline, the
registry's role and database, and only the registry hosts let in, over TLS."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from conftest import assert_runs_and_listens

UNIT = "postgresql@15-main.service"
NAME = USER = "mesh_registry"


def psql(host: Any, sql: str) -> str:
    command = f"cd / && runuser -u postgres -- psql -X -A -t -d postgres -c {shlex.quote(sql)}"
    return str(host.check_output(command)).strip()


def test_postgresql_15_runs_enabled_and_listens_on_the_lab(
    host: Any, lab_vars: dict[str, Any]
) -> None:
    assert_runs_and_listens(host, UNIT, f"tcp://{lab_vars['ansible_host']}:5432")
    assert psql(host, "SHOW server_version").startswith("15.")
    assert psql(host, "SHOW ssl") == "on"


def test_it_was_installed_without_a_route_out(host: Any) -> None:
    assert host.run("ip route show default").stdout.strip() == ""
    assert host.package("postgresql-15").is_installed


def test_the_registry_role_owns_its_database_with_a_scram_password(host: Any) -> None:
    owner = psql(host, f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{NAME}'")
    assert owner == USER
    scram = psql(
        host, f"SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = '{USER}'"
    )
    assert scram == "t"


def test_only_the_registry_hosts_may_connect_and_only_over_tls(
    host: Any, lab_vars: dict[str, Any], other_host_vars: Callable[[str], dict[str, Any]]
) -> None:
    hba = host.file("/etc/postgresql/15/main/pg_hba.conf").content_string
    lines = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    allowed = [line for line in lines if line[-1] != "reject" and line[0] != "local"]
    registry_addresses = {
        f"{other_host_vars(name)['ansible_host']}/32" for name in lab_vars["groups"]["registry"]
    }
    assert {tuple(line[:5]) for line in allowed} == {
        ("hostssl", NAME, USER, address, "scram-sha-256") for address in registry_addresses
    }
    # this machine is no registry host: refused, with the right password and TLS
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects connection"):
        psycopg.connect(
            host=str(lab_vars["ansible_host"]),
            dbname=NAME,
            user=USER,
            password=str(lab_vars["mesh_common_database_password"]),
            sslmode="require",
            connect_timeout=10,
        )

"""The registry's PostgreSQL (roles/mesh_database) on a lab with a database host (db1).

What an operator relies on: PostgreSQL 15 runs from packages installed with no route out, the
registry's role and database exist, only the registry hosts get in (with the password, over
TLS), a second run changes nothing, a check run shows no password, and a database backup is
fetched, opens with pg_restore --list and restores with the same rows. Skipped on a lab without
a `database` group (`lab up --database`, MESH_LAB_DATABASE=1).
"""

from __future__ import annotations

import secrets
import shlex
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.lab.fleet.conftest import recap

DATABASE_PLAYBOOK = "playbooks/database.yml"
POSTGRES_UNIT = "postgresql@15-main.service"
NAME = USER = "mesh_registry"
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def db_name(fleet: Any) -> str:
    members = fleet.lab.groups.get("database") or []
    if not members:
        pytest.skip("this lab has no database host (`lab up --database`): the registry is SQLite")
    return str(members[0])


@pytest.fixture(scope="module")
def password(fleet: Any) -> str:
    lab_vars = yaml.safe_load(fleet.lab.inventory.read_text())["all"]["vars"]
    return str(lab_vars["mesh_common_database_password"])


@pytest.fixture(scope="module")
def deployed(fleet: Any, db_name: str) -> Any:
    """database.yml applied (site.yml does too once it imports it): its output."""
    run = fleet.playbook(playbook=DATABASE_PLAYBOOK)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    return run


def psql(host: Any, sql: str, database: str = "postgres") -> str:
    """A query as postgres on the database host -> its unaligned output."""
    command = f"cd / && runuser -u postgres -- psql -X -A -t -d {database} -c {shlex.quote(sql)}"
    return str(host.check_output(command))


def test_postgresql_15_runs_from_packages_installed_offline(
    deployed: Any, db_name: str, lab_host: Any
) -> None:
    host = lab_host(db_name)
    assert host.run("ip route show default").stdout.strip() == "", "the host has a route out"
    assert host.service(POSTGRES_UNIT).is_running and host.service(POSTGRES_UNIT).is_enabled
    assert host.package("postgresql-15").is_installed
    source = host.file("/etc/apt/sources.list.d/mcp-mesh-database.list")
    assert (
        source.content_string.strip()
        == "deb [trusted=yes] file:/var/cache/mcp-mesh-database/debs ./"
    )
    assert host.file("/var/cache/mcp-mesh-database/debs/Packages").contains(
        "Package: postgresql-15"
    )
    assert psql(host, "SHOW server_version").startswith("15.")


def test_the_role_and_the_database_exist_hardened(
    deployed: Any, fleet: Any, db_name: str, lab_host: Any
) -> None:
    host = lab_host(db_name)
    owner = psql(host, f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{NAME}'")
    assert owner.strip() == USER
    login, verifier = (
        psql(
            host,
            f"SELECT rolcanlogin, left(rolpassword, 14) FROM pg_authid WHERE rolname = '{USER}'",
        )
        .strip()
        .split("|")
    )
    assert (login, verifier) == ("t", "SCRAM-SHA-256$")
    public = psql(host, f"SELECT has_database_privilege('public', '{NAME}', 'CONNECT')")
    assert public.strip() == "f"
    rows = psql(
        host,
        "SELECT name || '=' || setting FROM pg_settings WHERE name IN "
        "('ssl', 'password_encryption', 'log_connections')",
    ).split()
    assert dict(row.split("=", 1) for row in rows) == {
        "log_connections": "on",
        "password_encryption": "scram-sha-256",
        "ssl": "on" if fleet.tls else "off",
    }
    key = host.file("/etc/postgresql/15/main/mesh-tls/server.key")
    if key.exists:
        assert (key.user, key.mode) == ("postgres", 0o600)
    assert (
        psql(host, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL").strip() == "0"
    )


def test_a_host_outside_the_registry_group_is_refused(
    deployed: Any, fleet: Any, db_name: str, password: str
) -> None:
    # This machine, on the lab bridge, is no registry host.
    address = fleet.lab.hosts[db_name]
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(
            host=address,
            dbname=NAME,
            user=USER,
            password=password,
            sslmode="prefer",
            connect_timeout=10,
        )
    message = str(refused.value)
    assert f'pg_hba.conf rejects connection for host "{fleet.lab.controller}"' in message
    assert password not in message


CONNECT = """
import sys, psycopg
password = sys.stdin.readline().rstrip("\\n")
address, ca = sys.argv[1], sys.argv[2]
try:
    with psycopg.connect(host=address, dbname="mesh_registry", user="mesh_registry",
                         password=password, sslmode="verify-full" if ca else "disable",
                         sslrootcert=ca or None, connect_timeout=10) as connection:
        query = "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        row = connection.execute(query).fetchone()
        print("OK", row[0], row[1])
except psycopg.OperationalError as exc:
    print("REFUSED", exc)
"""


def connect_from(fleet: Any, lab_host: Any, client: str, address: str, password: str) -> str:
    """Connect from `client` with the release's psycopg, the password on stdin -> its verdict."""
    host = lab_host(client)
    python = "/opt/mcp-mesh/current/venv/bin/python"
    ca = "/etc/mcp-mesh/tls/ca.pem" if fleet.tls else ""
    command = (
        f"printf '%s\\n' {shlex.quote(password)} | {python} -c {shlex.quote(CONNECT)} "
        f"{address} {shlex.quote(ca)}"
    )
    result = host.run(command)  # not check_output: its failure message would show the password
    assert result.rc == 0, f"the connection script failed on {client}"
    return str(result.stdout).strip()


def test_a_registry_host_connects_with_the_password_and_an_agent_host_does_not(
    deployed: Any, fleet: Any, db_name: str, lab_host: Any, password: str
) -> None:
    address = fleet.lab.hosts[db_name]
    registry_host = next(h for h in fleet.lab.groups["registry"] if h != db_name)
    verdict = connect_from(fleet, lab_host, registry_host, address, password)
    assert verdict.startswith("OK mesh_registry"), verdict
    if fleet.tls:
        assert verdict.endswith("True"), "the registry host's connection is not encrypted"
    outsider = next(h for h in fleet.lab.groups["agents"] if h not in fleet.lab.groups["registry"])
    refused = connect_from(fleet, lab_host, outsider, address, password)
    assert refused.startswith("REFUSED") and "pg_hba.conf rejects connection" in refused
    wrong = connect_from(fleet, lab_host, registry_host, address, password + "x")
    assert wrong.startswith("REFUSED") and "password authentication failed" in wrong


def test_a_second_run_changes_nothing_and_a_check_run_shows_no_password(
    deployed: Any, fleet: Any, db_name: str, password: str
) -> None:
    again = fleet.playbook(playbook=DATABASE_PLAYBOOK)
    assert again.returncode == 0, again.stdout[-4000:]
    assert recap(again.stdout)[db_name]["changed"] == 0, again.stdout[-6000:]
    check = fleet.playbook("--check", "--diff", playbook=DATABASE_PLAYBOOK)
    assert check.returncode == 0, check.stdout[-4000:]
    assert recap(check.stdout)[db_name]["changed"] == 0, check.stdout[-6000:]
    for output in (deployed.stdout, again.stdout, check.stdout, check.stderr):
        assert password not in output


def test_the_database_backup_is_fetched_opens_and_restores_with_the_same_rows(
    deployed: Any, fleet: Any, db_name: str, lab_host: Any, tmp_path: Path
) -> None:
    host = lab_host(db_name)
    marker = secrets.token_hex(8)
    # A row of the registry's own, so the comparison below cannot pass on empty databases.
    psql(
        host,
        f"SET ROLE {USER}; CREATE TABLE IF NOT EXISTS restore_marker (value text);"
        f"INSERT INTO restore_marker VALUES ('{marker}')",
        database=NAME,
    )
    try:
        controller_dir = tmp_path / "backups"
        backup = fleet.playbook(
            "-e",
            "mesh_backup_fetch=true",
            "-e",
            "mesh_backup_hosts=none",
            "-e",
            f"mesh_backup_controller_dir={controller_dir}",
            playbook="playbooks/backup.yml",
        )
        assert backup.returncode == 0, backup.stdout[-6000:]
        copies = sorted((controller_dir / db_name).glob("mesh-registry-*.dump.age"))
        assert len(copies) == 1 and copies[0].stat().st_mode & 0o777 == 0o600
        assert not list((controller_dir / db_name).glob("*.dump")), "a plain copy was left"
        dumps = host.check_output("ls /var/backups/mcp-mesh-database").split()
        newest = sorted(d for d in dumps if d.endswith(".dump"))[-1]
        dump_file = host.file(f"/var/backups/mcp-mesh-database/{newest}")
        assert (dump_file.user, dump_file.mode) == ("root", 0o600)
        assert "restore_marker" in host.check_output(f"pg_restore --list {dump_file.path}")

        restore = fleet.playbook(
            "-e",
            "mesh_restore_from_controller=true",
            "-e",
            "mesh_restore_database=restore_check",
            "-e",
            f"mesh_backup_controller_dir={controller_dir}",
            playbook="playbooks/restore_database.yml",
        )
        assert restore.returncode == 0, restore.stdout[-6000:]
        counts = (
            "SELECT string_agg(table_name || '=' || (xpath('/row/c/text()', query_to_xml("
            "format('SELECT count(*) AS c FROM %I.%I', table_schema, table_name),"
            " false, true, '')))"
            "[1]::text, ',' ORDER BY table_name) FROM information_schema.tables "
            "WHERE table_schema = 'public'"
        )
        assert psql(host, counts, database="restore_check") == psql(host, counts, database=NAME)
        assert marker in psql(host, "SELECT value FROM restore_marker", database="restore_check")
    finally:
        psql(host, "DROP TABLE IF EXISTS restore_marker", database=NAME)
        psql(host, "DROP DATABASE IF EXISTS restore_check")


def test_a_dump_pg_restore_cannot_list_is_refused(
    deployed: Any, fleet: Any, db_name: str, lab_host: Any
) -> None:
    host = lab_host(db_name)
    bogus = "mesh-registry-20000101T000000Z.dump"
    host.check_output(f"head -c 4096 /dev/urandom > /var/backups/mcp-mesh-database/{bogus}")
    try:
        run = fleet.playbook(
            "-e",
            f"mesh_restore_backup={bogus}",
            "-e",
            "mesh_restore_database=restore_refused",
            playbook="playbooks/restore_database.yml",
        )
        assert run.returncode != 0
        assert "refusing to restore" in run.stdout and "Nothing was changed" in run.stdout
        exists = psql(host, "SELECT count(*) FROM pg_database WHERE datname = 'restore_refused'")
        assert exists.strip() == "0"
    finally:
        host.check_output(f"rm -f /var/backups/mcp-mesh-database/{bogus}")

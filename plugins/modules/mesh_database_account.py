#!/usr/bin/python
"""The registry's PostgreSQL role (LOGIN, SCRAM password) and its database, through psql."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import shutil
import subprocess
from collections.abc import Callable

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: mesh_database_account
author: MCP Mesh Ops maintainers (!UNKNOWN)
short_description: Create the registry's role and database, idempotently, never showing the password
description:
  - >-
    Runs on the database host as root; talks to the local server with C(psql) as the
    C(postgres) user (C(runuser), over the Unix socket: peer authentication), the SQL on stdin.
  - >-
    The password is never sent to the server in clear nor put on a command line: the module
    computes its SCRAM-SHA-256 verifier and sends that (as C(psql)'s C(\password) does). The
    role's current verifier is checked against the password first, so an unchanged password
    changes nothing.
  - >-
    The database is created C(UTF8) with the C(C.UTF-8) locale from C(template0), owned by the
    role; C(CONNECT) is revoked from C(PUBLIC), so only its owner and superusers connect.
  - In check mode, when PostgreSQL is not installed yet, reports a change and does nothing.
options:
  name:
    description: The database.
    type: str
    required: true
  user:
    description: The role that owns it.
    type: str
    required: true
  password:
    description: The role's password (ASCII). Never logged.
    type: str
    required: true
  port:
    description: The server's port.
    type: int
    default: 5432
"""

EXAMPLES = r"""
- name: Create the registry's role and database
  mcp_mesh.ops.mesh_database_account:
    name: mcp_mesh_registry
    user: mcp_mesh
    password: "{{ mesh_common_database_password }}"
    port: 5432
  no_log: true
"""

RETURN = r"""
changes:
  description: What was (or, in check mode, would be) created or changed, one sentence each.
  type: list
  elements: str
  returned: always
"""

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
SCRAM_ITERATIONS = 4096  # PostgreSQL's default scram_iterations
_VERIFIER = re.compile(
    r"^SCRAM-SHA-256\$(?P<iterations>\d+):(?P<salt>[^$]+)\$(?P<stored>[^:]+):(?P<server>.+)$"
)

Runner = Callable[[str], tuple[int, str, str]]


class AccountError(Exception):
    """A clear reason, never the password."""


def scram_verifier(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677)."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    encode = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{encode(salt).decode()}"
        f"${encode(stored_key).decode()}:{encode(server_key).decode()}"
    )


def verifier_matches(verifier: str | None, password: str) -> bool:
    """Whether the stored verifier is a SCRAM one made from `password` (md5 or none: no)."""
    match = _VERIFIER.match(verifier or "")
    if not match:
        return False
    try:
        salt = base64.b64decode(match["salt"], validate=True)
    except ValueError:
        return False
    again = scram_verifier(password, salt, int(match["iterations"]))
    return hmac.compare_digest(again, verifier or "")


def check_inputs(name: str, user: str, password: str) -> None:
    for what, value in (("name", name), ("user", user)):
        if not _IDENTIFIER.match(value):
            raise AccountError(
                f"the database {what} {value!r} must be a lower-case PostgreSQL identifier "
                "(letters, digits, _; not starting with a digit; at most 63 characters)"
            )
    if not password:
        raise AccountError(
            "mesh_common_database_password is empty: set it in a vault-encrypted file"
        )
    if not password.isascii() or not password.isprintable():
        raise AccountError(
            "mesh_common_database_password must be printable ASCII (its value is not shown)"
        )


def literal(text: str) -> str:
    """An SQL string literal (standard_conforming_strings)."""
    return "'" + text.replace("'", "''") + "'"


def state_query(name: str, user: str) -> str:
    """One row: role exists|verifier|can login|database exists|owner|public may connect.
    The names are checked identifiers, quoted as literals (`literal`)."""
    role, database = literal(user), literal(name)
    return (
        "SELECT "  # noqa: S608 - checked identifiers, quoted as literals
        f"(SELECT count(*) FROM pg_roles WHERE rolname = {role}),"
        f"(SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = {role}),"
        f"(SELECT coalesce(bool_or(rolcanlogin), false) FROM pg_roles WHERE rolname = {role}),"
        f"(SELECT count(*) FROM pg_database WHERE datname = {database}),"
        "(SELECT coalesce(pg_get_userbyid(datdba), '') FROM pg_database"
        f" WHERE datname = {database}),"
        f"(SELECT coalesce(bool_or(has_database_privilege('public', oid, 'CONNECT')), false)"
        f" FROM pg_database WHERE datname = {database});"
    )


def parse_state(text: str) -> dict[str, object]:
    line = text.strip().splitlines()[-1] if text.strip() else ""
    fields = line.split("|")
    if len(fields) != 6:
        raise AccountError("psql answered something unexpected to the state query")
    return {
        "role": fields[0] == "1",
        "verifier": fields[1],
        "login": fields[2] == "t",
        "database": fields[3] == "1",
        "owner": fields[4],
        "public_connect": fields[5] == "t",
    }


def plan(
    state: dict[str, object], name: str, user: str, password: str, salt: bytes
) -> tuple[list[str], list[str]]:
    """The statements that bring the server to the wanted state -> (SQL, what changes)."""
    statements: list[str] = []
    changes: list[str] = []
    password_ok = verifier_matches(str(state["verifier"]), password)
    verifier = literal(scram_verifier(password, salt))
    if not state["role"]:
        statements.append(f'CREATE ROLE "{user}" LOGIN PASSWORD {verifier};')
        changes.append(f"role {user} created")
    else:
        if not state["login"]:
            statements.append(f'ALTER ROLE "{user}" LOGIN;')
            changes.append(f"role {user} may log in")
        if not password_ok:
            statements.append(f'ALTER ROLE "{user}" PASSWORD {verifier};')
            changes.append(f"password of role {user} set")
    if not state["database"]:
        statements.append(
            f'CREATE DATABASE "{name}" OWNER "{user}" ENCODING \'UTF8\' '
            "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0;"
        )
        changes.append(f"database {name} created")
    elif state["owner"] != user:
        statements.append(f'ALTER DATABASE "{name}" OWNER TO "{user}";')
        changes.append(f"database {name} owned by {user}")
    if not state["database"] or state["public_connect"]:
        statements.append(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{name}" FROM PUBLIC;')
        if state["database"]:
            changes.append(f"database {name}: CONNECT revoked from PUBLIC")
    return statements, changes


def psql_runner(port: int) -> Runner:
    def run(sql: str) -> tuple[int, str, str]:
        argv = ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-A", "-t"]
        argv += ["-v", "ON_ERROR_STOP=1", "-p", str(port), "-d", "postgres"]
        done = subprocess.run(
            argv,
            input=sql,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
            cwd="/",
        )
        return done.returncode, done.stdout, done.stderr

    return run


def ensure(
    run: Runner, name: str, user: str, password: str, check_mode: bool, salt: bytes | None = None
) -> dict[str, object]:
    check_inputs(name, user, password)
    rc, out, err = run(state_query(name, user))
    if rc != 0:
        raise AccountError(f"psql could not read the roles and databases: {err.strip()}")
    statements, changes = plan(parse_state(out), name, user, password, salt or os.urandom(16))
    if statements and not check_mode:
        # CREATE DATABASE cannot run in a transaction block: psql sends each statement alone.
        rc, _, err = run("\n".join(statements) + "\n")
        if rc != 0:
            raise AccountError(f"psql failed: {_scrub(err, password)}")
    return {"changed": bool(statements), "changes": changes}


def _scrub(text: str, password: str) -> str:
    """An error message without any verifier or password in it."""
    text = re.sub(r"SCRAM-SHA-256\$\S+", "SCRAM-SHA-256$...", text)
    return text.replace(password, "********").strip()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "user": {"type": "str", "required": True},
            "password": {"type": "str", "required": True, "no_log": True},
            "port": {"type": "int", "default": 5432},
        },
        supports_check_mode=True,
    )
    params = module.params
    if shutil.which("psql") is None and module.check_mode:
        module.exit_json(changed=True, changes=["PostgreSQL is not installed yet"])
    try:
        result = ensure(
            psql_runner(params["port"]),
            params["name"],
            params["user"],
            params["password"],
            module.check_mode,
        )
    except AccountError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

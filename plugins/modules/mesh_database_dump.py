#!/usr/bin/python
"""Dump, check and restore the registry database in pg_dump's custom format."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: mesh_database_dump
author: MCP Mesh Ops maintainers (!UNKNOWN)
short_description: pg_dump --format=custom of a database, its check, its restore
description:
  - >-
    Runs on the database host as root; C(pg_dump) and C(pg_restore) run as C(postgres)
    (C(runuser), Unix socket, peer authentication) and stream through this module, so the dump
    file is root's, mode 0600, in a directory of mode 0700.
  - >-
    C(dump) writes C(<prefix>-<UTC time>.dump) into I(backup_dir) (a temporary name renamed
    when complete), hashes it while writing, checks it with C(pg_restore --list) and keeps the
    newest I(keep) dumps of the prefix. C(check) runs C(pg_restore --list) on I(path) and
    fails when it does. C(restore) checks first (refusing an archive C(pg_restore --list)
    refuses), then restores with C(pg_restore --clean --if-exists --single-transaction
    --exit-on-error) into I(database), created owned by I(owner) when it does not exist.
options:
  action:
    description: C(dump), C(check) or C(restore).
    type: str
    choices: [dump, check, restore]
    required: true
  database:
    description: The database to dump or restore into (required for dump and restore).
    type: str
  owner:
    description: Owner of a database the restore creates (required for restore).
    type: str
  backup_dir:
    description: >-
      The dumps' directory (required for dump; for check and restore without I(path), where
      I(backup) is looked up).
    type: path
  prefix:
    description: The dumps' name prefix.
    type: str
    default: mesh-registry
  keep:
    description: Dumps of the prefix kept after a new one (0 keeps all).
    type: int
    default: 7
  path:
    description: The dump to check or restore (else I(backup) in I(backup_dir)).
    type: path
  backup:
    description: C(latest) or the name of a dump in I(backup_dir), for check and restore.
    type: str
    default: latest
  port:
    description: The server's port.
    type: int
    default: 5432
"""

EXAMPLES = r"""
- name: Dump the registry database
  mcp_mesh.ops.mesh_database_dump:
    action: dump
    database: mcp_mesh_registry
    backup_dir: /var/backups/mcp-mesh/database
    keep: 7
  register: dump

- name: Check the newest dump with pg_restore --list
  mcp_mesh.ops.mesh_database_dump:
    action: check
    backup_dir: /var/backups/mcp-mesh/database
    backup: latest
  register: checked

- name: Restore it
  mcp_mesh.ops.mesh_database_dump:
    action: restore
    path: "{{ checked.path }}"
    database: mcp_mesh_registry
    owner: mcp_mesh
"""

RETURN = r"""
path:
  description: The dump written (dump) or checked (check).
  type: str
  returned: when action is dump or check
name:
  description: File name of the new dump.
  type: str
  returned: when action is dump
size:
  description: Size of the new dump in bytes.
  type: int
  returned: when action is dump
sha256:
  description: sha256 of the new dump.
  type: str
  returned: when action is dump
pruned:
  description: Older dumps removed to keep I(keep).
  type: list
  elements: str
  returned: when action is dump
ok:
  description: Whether C(pg_restore --list) accepts the dump.
  type: bool
  returned: when action is check or restore
entries:
  description: Entries C(pg_restore --list) shows.
  type: int
  returned: when the dump lists
tables:
  description: Names of the dump's tables.
  type: list
  elements: str
  returned: when the dump lists
table_data:
  description: Table data entries of the dump.
  type: int
  returned: when the dump lists
database:
  description: The database restored into.
  type: str
  returned: when action is restore
created:
  description: Whether the restore created the database.
  type: bool
  returned: when action is restore
"""

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_NAME = re.compile(r"^(?P<prefix>[A-Za-z0-9_.-]+)-(?P<stamp>\d{8}T\d{6}Z)\.dump$")

Runner = Callable[..., subprocess.CompletedProcess[bytes]]


class DumpError(Exception):
    """A clear verdict on a dump or a failed step."""


def dump_name(prefix: str, now: float) -> str:
    return f"{prefix}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}.dump"


def dumps_of(directory: Path, prefix: str, suffix: str = ".dump") -> list[Path]:
    """The prefix's complete dumps, oldest first (their names sort by time)."""
    found = []
    for path in directory.iterdir():
        if not path.name.endswith(suffix):
            continue
        match = _NAME.match(path.name[: len(path.name) - len(suffix)] + ".dump")
        if match and match["prefix"] == prefix and path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.name)


def pick(directory: Path, prefix: str, wanted: str, suffix: str = ".dump") -> Path:
    """The dump to check or restore: the newest (`latest`) or the one named (with or without
    its suffix); a clear error when there is none."""
    if not wanted or "/" in wanted:
        raise DumpError(f"give a dump's name or latest, not {wanted!r}")
    found = [p for p in dumps_of(directory, prefix, suffix)] if directory.is_dir() else []
    if wanted == "latest":
        if not found:
            raise DumpError(f"no dump of {prefix} in {directory}")
        return found[-1]
    for path in found:
        if wanted in (path.name, path.name[: -len(suffix)]):
            return path
    raise DumpError(f"no dump {wanted} in {directory}")


def to_prune(dumps: list[Path], keep: int) -> list[Path]:
    """The dumps beyond the newest `keep` (0 keeps them all)."""
    if keep <= 0 or len(dumps) <= keep:
        return []
    return dumps[: len(dumps) - keep]


def listing_verdict(rc: int, listing: str, error: str) -> dict[str, object]:
    """What `pg_restore --list` says of an archive: ok, tables, data entries, or why not."""
    if rc != 0:
        reason = error.strip().splitlines()[-1] if error.strip() else f"exit status {rc}"
        return {"ok": False, "reason": f"pg_restore --list refuses it: {reason}"}
    entries = [line for line in listing.splitlines() if line and not line.startswith(";")]
    tables = sorted({_object_name(e) for e in entries if _kind(e) == "TABLE"})
    data = [e for e in entries if _kind(e) == "TABLE DATA"]
    return {"ok": True, "entries": len(entries), "tables": tables, "table_data": len(data)}


def _kind(entry: str) -> str:
    # `3340; 0 16390 TABLE DATA public agents mesh_registry`
    parts = entry.split(";", 1)[-1].split()
    words = parts[2:]
    for size in (3, 2, 1):
        kind = " ".join(words[:size])
        if kind in _KINDS:
            return kind
    return words[0] if words else ""


_KINDS = {"TABLE DATA", "SEQUENCE SET", "TABLE", "INDEX", "SEQUENCE", "CONSTRAINT", "SCHEMA"}


def _object_name(entry: str) -> str:
    words = entry.split(";", 1)[-1].split()
    kind = _kind(entry)
    rest = words[2 + len(kind.split()) :]
    return ".".join(rest[:2]) if len(rest) >= 2 else " ".join(rest)


def as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv]


def _run(argv: list[str], stdin: IO[bytes] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        argv,
        stdin=stdin,
        capture_output=True,
        check=False,
        cwd="/",
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )


def check(path: Path, run: Runner = _run) -> dict[str, object]:
    if not path.is_file():
        return {"ok": False, "reason": f"{path} is not a file"}
    done = run(["pg_restore", "--list", str(path)])
    listing = done.stdout.decode(errors="replace")
    return listing_verdict(done.returncode, listing, _text(done.stderr))


def dump(
    database: str, backup_dir: Path, prefix: str, keep: int, port: int, now: float
) -> dict[str, object]:
    backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    backup_dir.chmod(0o700)
    name = dump_name(prefix, now)
    final = backup_dir / name
    partial = backup_dir / f".{name}.partial"
    digest = hashlib.sha256()
    size = 0
    argv = as_postgres("pg_dump", "--format=custom", "--port", str(port), "--dbname", database)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/"
            )
            if process.stdout is None or process.stderr is None:  # both are PIPE: never
                raise DumpError("pg_dump started without its pipes")
            for block in iter(lambda: process.stdout.read(1 << 20), b""):  # type: ignore[union-attr]
                digest.update(block)
                size += len(block)
                out.write(block)
            error = process.stderr.read()
            if process.wait() != 0:
                raise DumpError(f"pg_dump of {database} failed: {_text(error)}")
            out.flush()
            os.fsync(out.fileno())
        verdict = check(partial)
        if not verdict["ok"]:
            raise DumpError(f"the new dump of {database} does not list: {verdict['reason']}")
        partial.replace(final)
    finally:
        partial.unlink(missing_ok=True)
    pruned = [str(p) for p in to_prune(dumps_of(backup_dir, prefix), keep) if p != final]
    for path in pruned:
        Path(path).unlink()
    return {
        "changed": True,
        "name": name,
        "path": str(final),
        "size": size,
        "sha256": digest.hexdigest(),
        "pruned": pruned,
        **{k: v for k, v in verdict.items() if k != "ok"},
    }


def restore(path: Path, database: str, owner: str, port: int) -> dict[str, object]:
    verdict = check(path)
    if not verdict["ok"]:
        reason = verdict["reason"]
        raise DumpError(f"refusing to restore {path.name}: {reason}. Nothing was changed.")
    created = False
    query = "SELECT count(*) FROM pg_database WHERE datname = :'target';\n"
    exists = subprocess.run(
        as_postgres(
            "psql", "-X", "-A", "-t", "-p", str(port), "-d", "postgres", "-v", f"target={database}"
        ),
        input=query.encode(),
        capture_output=True,
        check=False,
        cwd="/",
    )
    if exists.returncode != 0:
        raise DumpError(f"psql failed: {_text(exists.stderr)}")
    if exists.stdout.strip() == b"0":
        made = _run(
            as_postgres(
                "createdb",
                "-p",
                str(port),
                "--owner",
                owner,
                "--encoding",
                "UTF8",
                "--locale",
                "C.UTF-8",
                "--template",
                "template0",
                database,
            )
        )
        if made.returncode != 0:
            raise DumpError(f"createdb {database} failed: {_text(made.stderr)}")
        created = True
    argv = as_postgres(
        "pg_restore",
        "--clean",
        "--if-exists",
        "--single-transaction",
        "--exit-on-error",
        "--port",
        str(port),
        "--dbname",
        database,
    )
    with path.open("rb") as archive:  # root's 0600 file: postgres reads it through stdin
        done = _run(argv, stdin=archive)
    if done.returncode != 0:
        raise DumpError(
            f"pg_restore into {database} failed (one transaction: nothing of it was applied): "
            f"{_text(done.stderr)}"
        )
    return {"changed": True, "database": database, "created": created, **verdict}


def _text(data: bytes) -> str:
    return data.decode(errors="replace").strip()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "choices": ["dump", "check", "restore"], "required": True},
            "database": {"type": "str"},
            "owner": {"type": "str"},
            "backup_dir": {"type": "path"},
            "prefix": {"type": "str", "default": "mesh-registry"},
            "keep": {"type": "int", "default": 7},
            "path": {"type": "path"},
            "backup": {"type": "str", "default": "latest"},
            "port": {"type": "int", "default": 5432},
        },
        required_if=[
            ("action", "dump", ["database", "backup_dir"]),
            ("action", "restore", ["database", "owner"]),
        ],
        supports_check_mode=True,
    )
    params = module.params
    for key in ("database", "owner"):
        if params[key] is not None and not _IDENTIFIER.match(params[key]):
            module.fail_json(msg=f"{key} {params[key]!r} is not a lower-case PostgreSQL identifier")
    try:
        if params["action"] in ("check", "restore") and not params["path"]:
            if not params["backup_dir"]:
                module.fail_json(msg="give path, or backup_dir and backup (latest or a name)")
            found = pick(Path(params["backup_dir"]), params["prefix"], params["backup"])
            params["path"] = str(found)
        if params["action"] == "check":
            verdict = check(Path(params["path"]))
            if not verdict["ok"]:
                module.fail_json(msg=f"{Path(params['path']).name}: {verdict['reason']}", **verdict)
            module.exit_json(changed=False, path=params["path"], **verdict)
        if module.check_mode:
            module.exit_json(changed=True, msg=f"would {params['action']}")
        if params["action"] == "dump":
            result = dump(
                params["database"],
                Path(params["backup_dir"]),
                params["prefix"],
                params["keep"],
                params["port"],
                time.time(),
            )
        else:
            result = restore(
                Path(params["path"]), params["database"], params["owner"], params["port"]
            )
    except (DumpError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

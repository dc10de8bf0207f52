"""`mcp-mesh-sdk migrate`: bring the agent's state directory to this release's schema.

`mcp-mesh-sdk migrate --registry-database` does the same for the registry's PostgreSQL
database (registry/pgschema.py): the URL is the registry's (MCP_MESH_REGISTRY_DATABASE_URL or
DATABASE_URL, from --env-file, default the registry's env file when it exists); never printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mcp_mesh_sdk.constants import AGENT_ENV, REGISTRY_ENV
from mcp_mesh_sdk.errors import OpsError

HELP = "apply (or roll back) state migrations; --status shows where the state stands"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--to", metavar="VERSION", help="migration id or number to stop at")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--rollback", action="store_true", help="undo migrations newer than --to (or the last)"
    )
    mode.add_argument(
        "--status", action="store_true", help="show applied and pending, change nothing"
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    parser.add_argument("--state-dir", type=Path, help="state directory (default: from env file)")
    parser.add_argument(
        "--env-file",
        metavar="PATH",
        help=f"agent env file (default {AGENT_ENV}; with --registry-database {REGISTRY_ENV})",
    )
    parser.add_argument(
        "--registry-database",
        action="store_true",
        help="migrate the registry's PostgreSQL database (its SQL migrations), not agent state",
    )


def run(args: argparse.Namespace) -> int:
    if args.registry_database:
        return _registry_database(args)
    from mcp_mesh_sdk import migrate
    from mcp_mesh_sdk.opspaths import agent_paths

    state_dir = args.state_dir or agent_paths(args.env_file).state_dir
    if args.status:
        outcome = migrate.status(state_dir)
    elif args.rollback:
        outcome = migrate.rollback(state_dir, args.to)
    else:
        outcome = migrate.upgrade(state_dir, args.to)
    document = outcome.to_json()
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    for step in outcome.ran:
        print(f"{step['direction']:>4}  {step['id']}")
    applied = set(outcome.applied)
    if args.status:
        for migration in outcome.available:
            mark = "applied" if migration.id in applied else "pending"
            print(f"{mark:>7}  {migration.id}  {migration.description}")
    elif not outcome.ran:
        print("nothing to do")
    print(
        f"state schema version {document['schema_version']} "
        f"(this release: {document['latest_schema_version']}) in {state_dir}"
    )
    return 0


def _registry_database(args: argparse.Namespace) -> int:
    from mcp_mesh_sdk.envfile import environment_with
    from mcp_mesh_sdk.registry.config import registry_database_url

    if args.rollback:
        raise OpsError(
            "registry database migrations are forward-only: each is additive, so the previous "
            "release runs on the newer schema; roll the release back, not the database"
        )
    if args.state_dir is not None:
        raise OpsError("--state-dir is for agent state, not with --registry-database")
    env_file = args.env_file or (REGISTRY_ENV if REGISTRY_ENV.exists() else None)
    url = registry_database_url(environment_with(env_file))
    if url is None:
        raise OpsError(
            "no registry database to migrate: set MCP_MESH_REGISTRY_DATABASE_URL or DATABASE_URL "
            "(the SQLite default needs no migration)"
        )
    from mcp_mesh_sdk.registry import pgschema

    to = None
    if args.to is not None:
        wanted = args.to.strip().split("_", 1)[0]
        if not wanted.isdigit():
            raise OpsError(f"--to must be a migration number like 0001, got {args.to!r}")
        to = int(wanted)
    secret = url.reveal()
    outcome = pgschema.status(secret) if args.status else pgschema.upgrade(secret, to)
    document = outcome.to_json()
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    for label in outcome.ran:
        print(f"  up  {label}")
    if args.status:
        applied = set(outcome.applied)
        for migration in outcome.available:
            mark = "applied" if migration.version in applied else "pending"
            print(f"{mark:>7}  {migration.version:04d}_{migration.name}")
    elif not outcome.ran:
        print("nothing to do")
    print(
        f"registry database schema version {document['schema_version']} "
        f"(this release: {document['latest_schema_version']})"
    )
    return 0

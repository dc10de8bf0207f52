"""`mcp-mesh-sdk registry`: serve the mesh registry until SIGTERM.

`mcp-mesh-sdk registry forget NAME`, on the registry host: drop NAME's entry and the binding
of NAME to its agent key, so the next registration of NAME binds it anew (an agent host was
rebuilt and lost its key). It writes the database the running registry uses; no restart.
"""

from __future__ import annotations

import argparse
import json

from mcp_mesh_sdk.constants import REGISTRY_ENV
from mcp_mesh_sdk.envfile import add_env_file_option, environment_with
from mcp_mesh_sdk.errors import OpsError

HELP = "run the mesh registry (agents register and heartbeat here), or forget an agent's binding"


def configure(parser: argparse.ArgumentParser) -> None:
    add_env_file_option(parser)
    actions = parser.add_subparsers(
        dest="action", metavar="ACTION", help="none: serve until SIGTERM"
    )
    forget = actions.add_parser(
        "forget",
        help="drop an agent's entry and its key binding (its next registration binds anew)",
        description=__doc__.split("\n\n")[1],
    )
    forget.add_argument("name", help="the agent name (AGENT_NAME) to forget")
    forget.add_argument(
        "--env-file",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=f"the registry's env file, for MCP_MESH_REGISTRY_DB (default {REGISTRY_ENV})",
    )
    forget.add_argument("--json", action="store_true", help="print the outcome as JSON")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "action", None) == "forget":
        return _forget(args)
    from mcp_mesh_sdk.registry.config import load_registry_config

    config = load_registry_config(environment_with(args.env_file))
    from mcp_mesh_sdk.registry.server import serve  # the server stack loads only now

    return serve(config)


def _forget(args: argparse.Namespace) -> int:
    import sqlite3

    from mcp_mesh_sdk.registry.config import registry_database_url, registry_db_path
    from mcp_mesh_sdk.registry.store import AgentStore, StoreUnavailable

    env_file = args.env_file or (REGISTRY_ENV if REGISTRY_ENV.exists() else None)
    env = environment_with(env_file)
    url = registry_database_url(env)
    if url is not None:  # PostgreSQL: the database every replica uses
        from mcp_mesh_sdk.registry.pgstore import PostgresStore

        pg = PostgresStore(url.reveal(), stale_after=0.0, retention=0.0, pool_size=2)
        try:
            entry, binding = pg.forget(args.name)
        except StoreUnavailable as exc:
            raise OpsError(f"cannot change the registry database: {exc}") from exc
        finally:
            pg.close()
        return _report_forget(args, entry, binding)
    db_path = registry_db_path(env)
    if not db_path.is_file():  # never create one: it would not be the service's
        raise OpsError(f"no registry database at {db_path} (see MCP_MESH_REGISTRY_DB)")
    try:
        store = AgentStore(db_path, stale_after=0.0, retention=0.0)
        try:
            entry, binding = store.forget(args.name)
        finally:
            store.close()
    except (sqlite3.Error, StoreUnavailable) as exc:
        raise OpsError(f"cannot change the registry database {db_path}: {exc}") from exc
    return _report_forget(args, entry, binding)


def _report_forget(args: argparse.Namespace, entry: bool, binding: bool) -> int:
    if args.json:
        print(json.dumps({"name": args.name, "entry_removed": entry, "binding_removed": binding}))
    elif entry or binding:
        removed = " and ".join(
            what for what, done in (("its entry", entry), ("its key binding", binding)) if done
        )
        print(f"forgot {args.name}: removed {removed}; its next registration binds it anew")
    else:
        print(f"the registry knows no agent {args.name}: nothing to forget")
    return 0

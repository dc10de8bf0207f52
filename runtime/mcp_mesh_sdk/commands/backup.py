"""`mcp-mesh-sdk backup create|list|verify|report|restore|prune`: verified backups of one host,
encrypted and authenticated with the host's age identity (`backup/encryption.py`).

`report` lives in `backup_report.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mcp_mesh_sdk.backup.catalog import list_backups, resolve_archive
from mcp_mesh_sdk.backup.create import create_backup
from mcp_mesh_sdk.backup.encryption import load_key_if_present
from mcp_mesh_sdk.backup.prune import prune
from mcp_mesh_sdk.backup.restore import restore_backup
from mcp_mesh_sdk.backup.sources import resolve_sources
from mcp_mesh_sdk.backup.verify import LEGACY, verify_archive
from mcp_mesh_sdk.commands.backup_report import HELP as REPORT_HELP
from mcp_mesh_sdk.commands.backup_report import configure_report, run_report
from mcp_mesh_sdk.constants import AGENT_ENV, BACKUP_DIR, BACKUP_IDENTITY_NAME, CONFIG_DIR

HELP = "create, list, verify, report, restore and prune backups of config, env file, state and data"


def _paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--env-file", metavar="PATH", help=f"agent env file (default {AGENT_ENV})")
    parser.add_argument("--config-dir", metavar="DIR", help=f"config directory ({CONFIG_DIR})")
    parser.add_argument("--state-dir", metavar="DIR", help="state dir (MCP_MESH_STATE_DIR)")
    parser.add_argument("--data-dir", metavar="DIR", help="data dir (BASE_DIRECTORY)")
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        help=f"backup directory (MCP_MESH_BACKUP_DIR, default {BACKUP_DIR})",
    )
    identity_option(parser)


def identity_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--identity-file",
        metavar="PATH",
        help=f"the age identity backups are encrypted to (default <config dir>/"
        f"{BACKUP_IDENTITY_NAME}, root-only 0600)",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="write a new backup archive")
    create.add_argument(
        "--level", type=int, default=None, choices=range(10), metavar="0-9",
        help="gzip level for every compressible chunk (default: 1, adaptive: chunks the "
        "compressors cannot keep up with are stored); incompressible data is always stored; "
        "1-3 deflate with ISA-L (python-isal) when it loads, 4-9 and 0 with zlib",
    )  # fmt: skip
    _paths(create)
    listing = sub.add_parser("list", help="list backups, newest first")
    _paths(listing)
    verify = sub.add_parser("verify", help="re-hash every member against the manifest")
    verify.add_argument("archive", help="NAME, PATH or latest")
    _paths(verify)
    report = sub.add_parser("report", help=REPORT_HELP, description=REPORT_HELP)
    configure_report(report)
    restore = sub.add_parser("restore", help="verify, then restore atomically")
    restore.add_argument("archive", help="NAME, PATH or latest")
    restore.add_argument("--mode", choices=("config", "data", "full"), required=True)
    restore.add_argument(
        "--allow-unencrypted",
        action="store_true",
        help="restore a legacy, unencrypted backup (nothing authenticates it)",
    )
    _paths(restore)
    prune = sub.add_parser("prune", help="delete old backups, never the newest verified one")
    prune.add_argument("--keep", type=int, required=True, metavar="N", help="newest to keep")
    prune.add_argument("--max-age", type=float, metavar="DAYS", help="delete older ones too")
    prune.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    _paths(prune)


def _emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    print(json.dumps(document, indent=2) if args.json else text)


def _progress(done: int, total: int, members: int) -> None:
    percent = 100 * done / total if total else 100.0
    sys.stderr.write(
        f"\r  {percent:5.1f} %  {done / 1e6:10.1f} / {total / 1e6:.1f} MB  {members} members"
    )
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    if args.action == "report":
        return run_report(args)
    sources = resolve_sources(
        args.env_file,
        args.config_dir,
        args.state_dir,
        args.data_dir,
        args.output_dir,
        args.identity_file,
    )
    action = args.action
    key = None if action == "create" else load_key_if_present(sources.identity_file)
    if action == "create":
        tty = sys.stderr.isatty()
        result = create_backup(sources, args.level, progress=_progress if tty else None)
        if tty:
            sys.stderr.write("\n")
        document = result.to_json()
        for warning in result.manifest.warnings if not args.json else ():
            print(f"warning: {warning}", file=sys.stderr)
        _emit(args, document, f"{result.path}  {result.size} bytes  sha256 {result.sha256}")
        return 0
    if action == "list":
        backups = list_backups(sources.backup_dir, key)
        lines = [
            f"{b.name}  {b.created_at or '?'}  {b.size:>12}  v{b.agent_version}  {b.verified}"
            for b in backups
        ]
        document = {
            "backup_dir": str(sources.backup_dir),
            "backups": [b.to_json() for b in backups],
        }
        _emit(args, document, "\n".join(lines) or f"no backups in {sources.backup_dir}")
        return 0
    if action == "verify":
        report = verify_archive(resolve_archive(args.archive, sources.backup_dir, key), key)
        legacy = "" if report.encrypted else f", {LEGACY}"
        text = f"{report.archive.name}: " + (
            f"OK ({report.checked} members{legacy})"
            if report.ok
            else "FAILED\n  " + "\n  ".join(report.problems())
        )
        _emit(args, report.to_json(), text)
        return 0 if report.ok else 1
    if action == "restore":
        archive = resolve_archive(args.archive, sources.backup_dir, key)
        restored = restore_backup(
            archive, args.mode, sources, key=key, allow_unencrypted=args.allow_unencrypted
        )
        document = restored.to_json()
        for warning in document["warnings"] if not args.json else ():
            print(f"warning: {warning}", file=sys.stderr)
        lines = [f"restored {t['root']} -> {t['path']}" for t in document["restored"]]
        if document["needs_migrate"]:
            lines.append("state is older than this release: run `mcp-mesh-sdk migrate`")
        _emit(args, document, "\n".join(lines))
        return 0
    outcome = prune(sources.backup_dir, args.keep, args.max_age, dry_run=args.dry_run, key=key)
    verb = "would delete" if args.dry_run else "deleted"
    text = "\n".join([f"{verb} {b.name}" for b in outcome.deleted] or ["nothing to prune"])
    _emit(args, {**outcome.to_json(), "dry_run": args.dry_run}, text)
    return 0

"""`mcp-mesh-sdk backup report`: verify every backup of a host, print rows and the verdict.

Exit status: 0 when the verdict passes, 1 when it fails, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.backup.encryption import load_key_if_present
from mcp_mesh_sdk.backup.report import DEFAULT_MAX_AGE_HOURS, make_report, merge_report
from mcp_mesh_sdk.backup.report_table import render_table
from mcp_mesh_sdk.backup.sources import resolve_sources
from mcp_mesh_sdk.constants import AGENT_ENV, BACKUP_DIR, BACKUP_IDENTITY_NAME
from mcp_mesh_sdk.errors import OpsError

HELP = "verify every backup, then judge: all verify and the newest is young enough"


def configure_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--env-file", metavar="PATH", help=f"agent env file (default {AGENT_ENV})")
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        help=f"backup directory (MCP_MESH_BACKUP_DIR, default {BACKUP_DIR})",
    )
    parser.add_argument(
        "--identity-file",
        metavar="PATH",
        help=f"the age identity that opens the backups and the copies (default <config dir>/"
        f"{BACKUP_IDENTITY_NAME})",
    )
    parser.add_argument(
        "--max-age-hours",
        type=float,
        default=DEFAULT_MAX_AGE_HOURS,
        metavar="HOURS",
        help="the newest backup must be younger (default %(default)g)",
    )
    parser.add_argument(
        "--copies",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="a directory of copies of this host's backups (e.g. the controller's): they must "
        "verify too, their age does not count; may be repeated",
    )
    parser.add_argument(
        "--host",
        metavar="NAME",
        help="the host the rows name (default: this host's short name; with --from-json, the "
        "report's)",
    )
    parser.add_argument(
        "--from-json",
        metavar="FILE",
        help="take the host's rows from a `backup report --json` made there ('-': standard "
        "input) instead of reading the backup directory; ages are measured again now",
    )


def _read_document(source: str) -> Any:
    where = "standard input" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise OpsError(f"cannot read {where}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise OpsError(f"{where} is not JSON: {exc}") from exc


def run_report(args: argparse.Namespace) -> int:
    sources = resolve_sources(
        args.env_file, output_dir=args.output_dir, identity_file=args.identity_file
    )
    key = load_key_if_present(sources.identity_file)
    if args.from_json is not None:
        document = _read_document(args.from_json)
        report = merge_report(document, args.copies, args.max_age_hours, key=key)
    else:
        report = make_report(
            sources.backup_dir, args.copies, args.host, args.max_age_hours, key=key
        )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(render_table(report))
    return 0 if report.verdict.ok else 1

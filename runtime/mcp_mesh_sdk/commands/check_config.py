"""`mcp-mesh-sdk check-config`: validate an agent or registry env file, the agent's clients
file (`--clients-file`) or a TLS certificate file (`--tls-cert`), without starting anything.

The roles run it as Ansible's `validate:` on a temporary copy, so it reads only the file it is
given (never this process's environment) and prints no secret value (a clients file holds
hashes only, and its problems name a line, never quote it; a certificate file's problems
never show its key).

`--tls-cert FILE [--tls-ca CA] [--tls-key KEY]` checks one PEM as the services load it
(`certificates.check_certificate_file`): exit 0, or 1 with one line saying what is wrong. An
env file's check also checks the TLS files it names (`MCP_MESH_TLS_*`, the registry's
`MCP_MESH_REGISTRY_TLS_*`): the certificate against the env's own CA file, as the local ops
commands verify the service.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.errors import ConfigError, ConfigProblem
from mcp_mesh_sdk.serving.tls import TlsSettings

HELP = (
    "validate an agent or registry environment file, the agent's clients file or a TLS "
    "certificate file; non-zero exit naming every problem"
)


def configure(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--env-file", metavar="PATH", help="the env file to check")
    which.add_argument(
        "--clients-file",
        metavar="PATH",
        help="the agent's clients file to check (MCP_MESH_CLIENTS_FILE: `name sha256-hex` lines)",
    )
    which.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="a PEM with a certificate chain and its private key to check (exit 1 when unusable)",
    )
    parser.add_argument(
        "--tls-ca", metavar="FILE", help="with --tls-cert: the chain must verify against this CA"
    )
    parser.add_argument(
        "--tls-key", metavar="FILE", help="with --tls-cert: the private key is in this file"
    )
    parser.add_argument(
        "--service",
        choices=("agent", "registry"),
        default="agent",
        help="which service's variables the file holds (default: agent)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    if args.tls_cert is None and (args.tls_ca is not None or args.tls_key is not None):
        option = "--tls-ca" if args.tls_ca is not None else "--tls-key"
        raise ConfigError([ConfigProblem(option, "goes with --tls-cert")])
    if args.tls_cert is not None:
        return _check_tls_cert(args)
    if args.clients_file is not None:
        return _check_clients_file(args)
    from mcp_mesh_sdk.envfile import read_env_file

    try:
        env = read_env_file(args.env_file)
    except ConfigError as exc:
        if not args.json:
            raise
        settings, problems, warnings = None, list(exc.problems), list[str]()
    else:
        settings, problems, warnings = _check(args.service, env)
    return _verdict(
        args,
        _report(args, settings, problems, warnings),
        problems,
        warnings,
        f"{args.service} configuration in {args.env_file} is valid",
    )


def _verdict(
    args: argparse.Namespace,
    report: dict[str, Any],
    problems: list[ConfigProblem],
    warnings: list[str],
    valid_message: str,
    failed_exit: int | None = None,
) -> int:
    """Print the report (--json) or the warnings and the one-line verdict; problems fail
    (EXIT_CONFIG, or `failed_exit` with each problem's reason alone on a line)."""
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        if problems:
            from mcp_mesh_sdk.cli import EXIT_CONFIG

            return EXIT_CONFIG if failed_exit is None else failed_exit
        return 0
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if problems and failed_exit is not None:
        for problem in problems:
            print(f"mcp-mesh-sdk check-config: {problem.reason}", file=sys.stderr)
        return failed_exit
    if problems:
        raise ConfigError(list(problems))
    print(valid_message)
    return 0


def _check_clients_file(args: argparse.Namespace) -> int:
    from mcp_mesh_sdk.agent.clients import (
        NO_CLIENTS_WARNING,
        ClientsFileError,
        read_clients_file,
    )

    problems: list[ConfigProblem] = []
    names: list[str] = []
    try:
        names = sorted(read_clients_file(Path(args.clients_file)).values())
    except ClientsFileError as exc:
        problems.append(ConfigProblem("MCP_MESH_CLIENTS_FILE", str(exc)))
    warnings = [] if names or problems else [f"MCP_MESH_CLIENTS_FILE: {NO_CLIENTS_WARNING}"]
    report = {
        "clients_file": str(args.clients_file),
        "valid": not problems,
        "problems": [{"variable": p.variable, "reason": p.reason} for p in problems],
        "warnings": warnings,
        "clients": names,
    }
    return _verdict(
        args,
        report,
        problems,
        warnings,
        f"clients file {args.clients_file} is valid: {len(names)} client(s) {', '.join(names)}",
    )


def _check_tls_cert(args: argparse.Namespace) -> int:
    """One certificate file, as an Ansible `validate:` runs it: exit 1 with one line when it
    cannot serve (never 78: nothing in an env file is wrong)."""
    from mcp_mesh_sdk.certificates import EXPIRY_P3_DAYS, CertificateError, check_certificate_file

    def path(value: str | None) -> Path | None:
        return None if value is None else Path(value)

    problems: list[ConfigProblem] = []
    warnings: list[str] = []
    report: dict[str, Any] = {"cert_file": args.tls_cert, "verified_against": args.tls_ca}
    valid_message = ""
    try:
        checked = check_certificate_file(
            Path(args.tls_cert), key_file=path(args.tls_key), ca_file=path(args.tls_ca)
        )
    except CertificateError as exc:
        problems.append(ConfigProblem("--tls-cert", str(exc)))
    else:
        if checked.days_left <= EXPIRY_P3_DAYS:
            warnings.append(f"{args.tls_cert}: expires in {checked.days_left:.1f} days")
        report |= checked.to_json()
        against = f", verified against {args.tls_ca}" if args.tls_ca else ""
        valid_message = (
            f"certificate file {args.tls_cert} is valid: {checked.subject}, "
            f"expires {checked.date}{against}"
        )
    report |= {
        "valid": not problems,
        "problems": [{"variable": p.variable, "reason": p.reason} for p in problems],
        "warnings": warnings,
    }
    return _verdict(args, report, problems, warnings, valid_message, failed_exit=1)


def _check_tls_files(tls: TlsSettings, prefix: str) -> list[ConfigProblem]:
    """The TLS files an env names: the CA file loads, the certificate file can serve and
    verifies against that CA."""
    from mcp_mesh_sdk.certificates import (
        CertificateError,
        ca_client_context,
        check_certificate_file,
    )

    problems: list[ConfigProblem] = []
    ca_file = tls.ca_file
    if ca_file is not None:
        try:
            ca_client_context(ca_file)
        except CertificateError as exc:
            problems.append(ConfigProblem(f"{prefix}TLS_CA_FILE", str(exc)))
            ca_file = None
    if tls.cert_file is not None:
        try:
            check_certificate_file(tls.cert_file, key_file=tls.key_file, ca_file=ca_file)
        except CertificateError as exc:
            problems.append(ConfigProblem(f"{prefix}TLS_CERT_FILE", str(exc)))
    return problems


def _check(
    service: str, env: Mapping[str, str]
) -> tuple[dict[str, Any] | None, list[ConfigProblem], list[str]]:
    """(redacted settings or None, problems, warnings) for one service's environment."""
    if service == "agent":
        from mcp_mesh_sdk.config import check_agent_env

        checked = check_agent_env(env)
        problems, warnings = list(checked.problems), list(checked.warnings)
        base = checked.config.base_directory if checked.config else None
        if base is not None:
            _check_base_directory(base, problems, warnings)
        if checked.config is not None:
            problems += _check_tls_files(checked.config.tls, "MCP_MESH_")
        shown = checked.config.redacted() if checked.config else None
        return shown, problems, warnings
    from mcp_mesh_sdk.registry.config import load_registry_config

    try:
        config = load_registry_config(env)
    except ConfigError as exc:
        return None, list(exc.problems), []
    tls_problems = _check_tls_files(config.tls, "MCP_MESH_REGISTRY_")
    return config.redacted(), tls_problems, list(config.warnings)


_KINDS = (
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (lambda mode: True, "a device"),
)


def _check_base_directory(base: Path, problems: list[ConfigProblem], warnings: list[str]) -> None:
    """What this host holds at BASE_DIRECTORY: a directory (fine, unless a symlink leads it to
    a system directory), nothing yet (a warning: /ready fails until it exists), or anything
    else (a problem: the file tools could never work)."""
    from mcp_mesh_sdk.config import system_directory_problem

    try:
        info = base.stat()
    except FileNotFoundError:
        warnings.append(f"BASE_DIRECTORY: {base} does not exist (yet); /ready fails until it does")
        return
    except PermissionError:
        warnings.append(f"BASE_DIRECTORY: {base} cannot be checked by this user (run as root)")
        return
    except OSError as exc:  # a file on the way (ENOTDIR), a symlink loop
        problems.append(ConfigProblem("BASE_DIRECTORY", f"{base} cannot be read: {exc.strerror}"))
        return
    if not stat.S_ISDIR(info.st_mode):
        kind = next(name for test, name in _KINDS if test(info.st_mode))
        problems.append(ConfigProblem("BASE_DIRECTORY", f"{base} is not a directory ({kind})"))
        return
    real = Path(os.path.realpath(base))
    leads_to = system_directory_problem(real) if real != base else None
    if leads_to is not None:
        problems.append(ConfigProblem("BASE_DIRECTORY", f"{base} leads to {real}: {leads_to}"))


def _report(
    args: argparse.Namespace,
    settings: dict[str, Any] | None,
    problems: list[ConfigProblem],
    warnings: list[str],
) -> dict[str, Any]:
    return {
        "service": args.service,
        "env_file": str(args.env_file),
        "valid": not problems,
        "problems": [{"variable": p.variable, "reason": p.reason} for p in problems],
        "warnings": warnings,
        "settings": settings,
    }

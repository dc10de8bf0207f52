"""Read the `KEY=VALUE` files that systemd's `EnvironmentFile=` reads, the same way it does."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from mcp_mesh_sdk.errors import ConfigError, ConfigProblem


def parse_env_text(text: str, source: str = "<env>") -> dict[str, str]:
    """Parse env-file text: comments, blank lines, `export `, single or double quotes."""
    values: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum() or key[0].isdigit():
            problems.append(ConfigProblem(f"{source}:{number}", "not a KEY=VALUE line"))
            continue
        value = value.strip()
        if value[:1] in {"'", '"'}:
            try:
                parts = shlex.split(value)
            except ValueError:
                problems.append(ConfigProblem(key, f"unbalanced quotes ({source}:{number})"))
                continue
            value = " ".join(parts)
        values[key] = value
    if problems:
        raise ConfigError(problems)
    return values


def read_env_file(path: str | Path) -> dict[str, str]:
    """Parse one env file; a missing or unreadable file is a ConfigError, not a traceback."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(file), exc.strerror or str(exc))]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem(str(file), "not UTF-8 text")]) from exc
    return parse_env_text(text, source=str(file))


def environment_with(env_file: str | Path | None) -> dict[str, str]:
    """This process's environment with `env_file`'s variables on top: the file the operator
    named on the command line wins over what the process happened to inherit."""
    env = dict(os.environ)
    if env_file:
        env.update(read_env_file(env_file))
    return env


def add_env_file_option(parser: argparse.ArgumentParser) -> None:
    """The `--env-file PATH` option of the commands that read `environment_with()`."""
    parser.add_argument(
        "--env-file",
        metavar="PATH",
        help="read variables from this file too (they win over the environment)",
    )

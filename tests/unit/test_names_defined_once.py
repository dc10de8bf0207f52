"""The agent's unit name and the install directory are written once per side.

The Ansible side defines them in roles/mesh_common (vars/main.yml for the names, the defaults and
their argument specs for the paths); the Python side in mcp_mesh_sdk/constants.py. Everything
else refers to those. Documentation and tests may spell them out.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LITERALS = re.compile(r"mcp-mesh-sdk\.service|/opt/mcp-mesh")
DEFINITIONS = {
    "runtime/mcp_mesh_sdk/constants.py",
    "roles/mesh_common/vars/main.yml",
    "roles/mesh_common/defaults/main.yml",
    "roles/mesh_common/meta/argument_specs.yml",
}


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return listed.stdout.splitlines()


def allowed(path: str) -> bool:
    return (
        path in DEFINITIONS
        or path.endswith(".md")
        or path.startswith(("docs/", "tests/", "bench/results/"))
        or (path.startswith("molecule/") and "/tests/" in path)  # the scenarios' testinfra
    )


def test_no_file_restates_the_unit_name_or_the_install_directory() -> None:
    found = []
    for path in tracked_files():
        file = REPO / path
        if allowed(path) or not file.is_file() or file.is_symlink():
            continue
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [
            f"{path}:{number}: {line.strip()}"
            for number, line in enumerate(text.splitlines(), start=1)
            if LITERALS.search(line)
        ]
    assert found == [], "\n".join(found)

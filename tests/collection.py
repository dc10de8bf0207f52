"""The collection mcp_mesh.ops as a user gets it: built with `ansible-galaxy collection build`
from this checkout, installed from the tarball into a collections path of its own, and run from
a working directory outside the checkout whose ansible.cfg names that path and nothing of the
checkout (no roles_path, no collections/ link back to it).

build(output) -> tarball; Installed.create(tarball, folder) -> Installed (.root, .workdir,
.env(), .playbook(...)). The lab fixture, the tarball's unit tests and the sanity test share it.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NAMESPACE, NAME = "mcp_mesh", "ops"
# The checkout's ansible.cfg settings that are paths into the checkout: an installed collection's
# user has none of them.
CHECKOUT_PATHS = ("inventory", "roles_path", "collections_path", "filter_plugins", "library")


def build(output: Path) -> Path:
    """`ansible-galaxy collection build` of the checkout (README's command) -> the tarball."""
    command = [str(BIN / "ansible-galaxy"), "collection", "build", "--force"]
    subprocess.run(
        [*command, "--output-path", str(output), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    (tarball,) = output.glob(f"{NAMESPACE}-{NAME}-*.tar.gz")
    return tarball


def user_config(collections: Path) -> str:
    """The checkout's ansible.cfg (forks, SSH settings, fact cache) without its paths into the
    checkout, and with `collections` as the only collections path."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "ansible.cfg")
    for key in CHECKOUT_PATHS:
        parser.remove_option("defaults", key)
    parser.set("defaults", "collections_path", str(collections))
    lines = []
    for section in parser.sections():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in parser.items(section)]
        lines.append("")
    return "\n".join(lines)


@dataclass
class Installed:
    collections: Path  # the collections path (holds ansible_collections/mcp_mesh/ops)
    workdir: Path  # where ansible-playbook runs: outside the checkout, with its own ansible.cfg

    @property
    def root(self) -> Path:
        return self.collections / "ansible_collections" / NAMESPACE / NAME

    @classmethod
    def prepare(cls, folder: Path) -> Installed:
        """The working directory and its ansible.cfg, nothing installed yet."""
        installed = cls(folder / "collections", folder / "work")
        installed.workdir.mkdir(parents=True)
        (installed.workdir / "ansible.cfg").write_text(user_config(installed.collections))
        return installed

    @classmethod
    def create(cls, tarball: Path, folder: Path) -> Installed:
        installed = cls.prepare(folder)
        installed.run(
            "ansible-galaxy",
            "collection",
            "install",
            str(tarball),
            "-p",
            str(installed.collections),
        )
        return installed

    def env(self) -> dict[str, str]:
        """The environment less every ANSIBLE_* setting (the suite's ANSIBLE_CONFIG names the
        checkout's); the working directory's ansible.cfg is the one read."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
        env["ANSIBLE_CONFIG"] = str(self.workdir / "ansible.cfg")
        return env

    def run(
        self,
        tool: str,
        *args: str,
        timeout: float = 600,
        check: bool = True,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / tool), *args],
            cwd=cwd or self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def playbook(
        self, playbook: str, *args: str, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """`ansible-playbook mcp_mesh.ops.<playbook> ARGS` (README's command)."""
        return self.run(
            "ansible-playbook",
            f"{NAMESPACE}.{NAME}.{playbook}",
            *args,
            timeout=timeout,
            check=False,
        )

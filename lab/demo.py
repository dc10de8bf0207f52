"""`lab demo`: run the demo playbooks against a lab that is up.

The demo prints the lab's hosts (playbooks/lab_facts.yml), deploys the fleet to them
(playbooks/site.yml) and ends with the fleet table (playbooks/fleet_status.yml): per agent its
version, service state, readiness, registry status and load-balancer state.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from lab.errors import LabError
from lab.state import REPO

DEMO_PLAYBOOKS = (
    "playbooks/lab_facts.yml",
    "playbooks/site.yml",
    "playbooks/fleet_status.yml",
)


def ansible_playbook() -> str:
    beside_python = Path(sys.executable).parent / "ansible-playbook"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("ansible-playbook")
    if found is None:
        raise LabError("ansible-playbook is not installed (run `make venv`)")
    return found


def run_demo(inventory: Path, playbooks: tuple[str, ...] = DEMO_PLAYBOOKS) -> int:
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for playbook in playbooks:
        if not (REPO / playbook).is_file():
            raise LabError(f"no playbook {playbook} in {REPO}")
        command = [ansible_playbook(), "-i", str(inventory), str(REPO / playbook)]
        code = subprocess.run(command, cwd=REPO, env=env).returncode
        if code != 0:
            return code
    return 0

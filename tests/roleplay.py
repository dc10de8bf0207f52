"""Run tasks of the repo's roles with Ansible on this machine, inside a stand-in service role
(mesh_common's pieces ask to be called from one), for unit tests of what a role writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_in_service_role(
    tmp_path: Path,
    tasks: list[dict[str, Any]],
    variables: dict[str, Any],
    *args: str,
    handlers: list[dict[str, Any]] | None = None,
) -> str:
    """`tasks` (and `handlers`) as the role `svc` on localhost, `variables` as extra vars (a
    file: secrets stay off the command line); "rc=N", then stdout and stderr."""
    role = tmp_path / "roles" / "svc"
    for part, content in (("tasks", tasks), ("handlers", handlers or [])):
        (role / part).mkdir(parents=True, exist_ok=True)
        (role / part / "main.yml").write_text(json.dumps(content))
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        json.dumps([{"hosts": "localhost", "gather_facts": False, "roles": ["svc"]}])
    )
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"ansible_python_interpreter": sys.executable, **variables}))
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i", "localhost,", "-c", "local", str(playbook), "-e", f"@{extra}", *args,
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": f"{tmp_path / 'roles'}:{REPO / 'roles'}",
        },
    )  # fmt: skip
    return f"rc={done.returncode}\n{done.stdout}\n{done.stderr}"

"""Every path the playbooks write on the controller derives from mesh_common_controller_data_dir
(mesh_common's default: the repository root, as before), so one variable points an
ansible-runner / AWX job's wheelhouse cache, PostgreSQL packages, backups and reports at
persistent storage.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
ROLES = REPO / "roles"
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
DATA_DIR = "mesh_common_controller_data_dir"
INTERPRETER = f"ansible_python_interpreter={sys.executable}"

# Where playbook_dir may still appear: the data dir's and the source tree's own defaults
# (declared in mesh_common's defaults and argument spec), commands' working directories, and
# kubernetes.yml's read-only search for the roles' templates beside the playbooks (an installed
# collection, where roles_path does not lead to them).
PLAYBOOK_DIR_USES = re.compile(
    r"(mesh_common_controller_data_dir|mesh_common_source_dir|default|chdir): "
    r'"\{\{ playbook_dir( \| dirname)? \}\}(/\.\.)?"'
    r"|'DEFAULT_ROLES_PATH'\) \+ \[playbook_dir \| dirname ~ '/roles'\]\)$"
)


def play_vars(playbook: str, play: int) -> dict[str, str]:
    plays = yaml.safe_load((PLAYBOOKS / playbook).read_text(encoding="utf-8"))
    variables: dict[str, str] = plays[play]["vars"]
    return variables


def test_playbook_dir_is_used_only_for_the_defaults_and_working_directories() -> None:
    stray = [
        f"{path.relative_to(REPO)}: {line.strip()}"
        for path in sorted([*PLAYBOOKS.rglob("*.yml"), *ROLES.rglob("*.yml")])
        for line in path.read_text(encoding="utf-8").splitlines()
        if "playbook_dir" in line
        and not line.lstrip().startswith("#")
        and not PLAYBOOK_DIR_USES.search(line)
    ]
    assert stray == []


def test_every_controller_output_names_the_data_dir() -> None:
    outputs = {
        "mesh_common wheelhouse": yaml.safe_load(
            (ROLES / "mesh_common" / "defaults" / "main.yml").read_text(encoding="utf-8")
        )["mesh_common_wheelhouse_cache_dir"],
        "mesh_database packages": yaml.safe_load(
            (ROLES / "mesh_database" / "defaults" / "main.yml").read_text(encoding="utf-8")
        )["mesh_database_package_dir"],
        "backup.yml agents": play_vars("backup.yml", 0)["_controller_dir"],
        "backup.yml database": play_vars("backup.yml", 1)["_controller_dir"],
        "restore.yml": play_vars("restore.yml", 0)["_controller_dir"],
        "restore_database.yml": play_vars("restore_database.yml", 0)["_controller_dir"],
        "verify_backup.yml": play_vars("verify_backup.yml", 0)["_copies"],
        "diagnostics.yml": play_vars("diagnostics.yml", 1)["_mesh_diag_dir"],
    }
    assert {name: DATA_DIR in value for name, value in outputs.items()} == dict.fromkeys(
        outputs, True
    )


def resolved_paths(tmp_path: Path, *extra: str) -> dict[str, Any]:
    """The controller paths as a play sees them: mesh_common's and mesh_database's defaults
    (imported as the playbooks import them) and the playbooks' own expressions, evaluated by
    ansible-playbook on localhost. The playbook sits in <tmp>/playbooks like the repo's."""
    expressions = {
        "data_dir": "{{ mesh_common_controller_data_dir }}",
        "wheelhouse": "{{ mesh_common_wheelhouse_cache_dir }}",
        "packages": "{{ mesh_database_package_dir }}",
        "backups": play_vars("backup.yml", 0)["_controller_dir"],
        "database_backups": play_vars("backup.yml", 1)["_controller_dir"],
        "reports": play_vars("diagnostics.yml", 1)["_mesh_diag_dir"],
    }
    (tmp_path / "playbooks").mkdir()
    playbook = tmp_path / "playbooks" / "paths.yml"
    out = tmp_path / "paths.json"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Resolve the controller paths",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "vars": {"_paths": expressions},
                    "tasks": [
                        {"ansible.builtin.import_role": {"name": role, "tasks_from": "names.yml"}}
                        for role in ("mesh_agent", "mesh_database")
                    ]
                    + [
                        {
                            "ansible.builtin.copy": {
                                "content": "{{ _paths | to_json }}",
                                "dest": str(out),
                                "mode": "0600",
                            }
                        }
                    ],
                }
            ]
        )
    )
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROLES),
    }
    env["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = str(tmp_path / "facts")
    run = subprocess.run(
        [str(PLAYBOOK), "-i", "localhost,", "-e", INTERPRETER, str(playbook), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    paths: dict[str, Any] = json.loads(out.read_text())
    return paths


def test_by_default_everything_stays_where_it_was_under_the_checkout(tmp_path: Path) -> None:
    paths = {name: os.path.normpath(value) for name, value in resolved_paths(tmp_path).items()}
    root = str(tmp_path)  # the playbook's parent directory, the repository root for playbooks/
    assert paths == {
        "data_dir": root,
        "wheelhouse": f"{root}/.cache/wheelhouse",
        "packages": f"{root}/.cache/postgresql-debs",
        "backups": f"{root}/backups",
        "database_backups": f"{root}/backups",
        "reports": f"{root}/reports",
    }


def test_one_variable_moves_every_controller_path(tmp_path: Path) -> None:
    paths = resolved_paths(tmp_path, "-e", f"{DATA_DIR}=/srv/mesh-data")
    assert paths == {
        "data_dir": "/srv/mesh-data",
        "wheelhouse": "/srv/mesh-data/.cache/wheelhouse",
        "packages": "/srv/mesh-data/.cache/postgresql-debs",
        "backups": "/srv/mesh-data/backups",
        "database_backups": "/srv/mesh-data/backups",
        "reports": "/srv/mesh-data/reports",
    }


def test_a_path_set_on_its_own_still_wins(tmp_path: Path) -> None:
    paths = resolved_paths(
        tmp_path,
        "-e",
        f"{DATA_DIR}=/srv/mesh-data",
        "-e",
        "mesh_backup_controller_dir=/mnt/offsite",
        "-e",
        "mesh_common_wheelhouse_cache_dir=/var/cache/wheels",
    )
    assert paths["backups"] == "/mnt/offsite"
    assert paths["wheelhouse"] == "/var/cache/wheels"
    assert paths["reports"] == "/srv/mesh-data/reports"

#!/usr/bin/python
"""Create several directories with their owner, group and mode in one module run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: mesh_dirs
author: MCP Mesh Ops maintainers (!UNKNOWN)
short_description: several directories, each with its owner, group and mode, in one step
description:
  - >-
    What a loop of C(ansible.builtin.file) with C(state=directory) does, in one module run on the
    host instead of one per directory (each run starts Python on the host and costs the
    controller a worker): every directory of I(paths) is created when missing (its parents too,
    as C(file) does) and gets the owner, group and mode given; an existing one is corrected.
  - >-
    Reports C(changed) when any directory was created or corrected, and which in I(changed_paths).
    Check mode reports the same without touching anything; C(--diff) shows each directory's
    state, owner, group and mode before and after.
options:
  paths:
    description: The directories, in the order they are made (a parent before its children).
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path of the directory.
        type: path
        required: true
      owner:
        description: Its owning user (name or id).
        type: str
      group:
        description: Its group (name or id).
        type: str
      mode:
        description: Its mode, octal as a string (C("0750")).
        type: raw
"""

EXAMPLES = r"""
- name: Create a service's directories
  mcp_mesh.ops.mesh_dirs:
    paths:
      - {path: /srv/example, owner: root, group: root, mode: "0755"}
      - {path: /srv/example/data, owner: nobody, group: nogroup, mode: "0750"}
"""

RETURN = r"""
changed_paths:
  description: The directories created or corrected (or that would be, in check mode).
  type: list
  elements: str
  returned: always
"""


def ensure(module: AnsibleModule, entry: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Make one directory as `entry` says; (changed, diff)."""
    path = entry["path"]
    if not Path(path).is_absolute():
        module.fail_json(msg=f"{path} is not an absolute path")
    diff: dict[str, Any] = {"before": {"path": path}, "after": {"path": path}}
    created = False
    if not (Path(path).exists() or Path(path).is_symlink()):
        created = True
        diff["before"]["state"] = "absent"
        diff["after"]["state"] = "directory"
        if module.check_mode:
            return True, diff
        Path(path).mkdir(parents=True)
    elif not Path(path).is_dir():
        module.fail_json(msg=f"{path} exists and is not a directory")
    wanted = {key: entry.get(key) for key in ("owner", "group", "mode")}
    arguments = module.load_file_common_arguments({"path": path, **wanted})
    changed = module.set_fs_attributes_if_different(arguments, created, diff=diff)
    return changed, diff


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "paths": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "path": {"type": "path", "required": True},
                    "owner": {"type": "str"},
                    "group": {"type": "str"},
                    "mode": {"type": "raw"},
                },
            },
        },
        supports_check_mode=True,
    )
    changed_paths, diffs = [], []
    for entry in module.params["paths"]:
        changed, diff = ensure(module, entry)
        if changed:
            changed_paths.append(entry["path"])
            diffs.append(diff)
    module.exit_json(changed=bool(changed_paths), changed_paths=changed_paths, diff=diffs)


if __name__ == "__main__":
    main()

"""Directories with their owner, group and mode, as ansible.builtin.file makes them, and paths
removed as its state=absent does: shared by the collection's modules that make and remove them
(mesh_files, mesh_release)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule


def ensure_directory(module: AnsibleModule, entry: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Make the directory `entry` names (path; owner, group, mode when given), its parents too,
    or correct it; (changed, diff). Check mode changes nothing. ValueError: not a directory."""
    path = Path(entry["path"])
    if not path.is_absolute():
        raise ValueError(f"{path} is not an absolute path")
    diff: dict[str, Any] = {"before": {"path": str(path)}, "after": {"path": str(path)}}
    created = False
    if not (path.exists() or path.is_symlink()):
        created = True
        diff["before"]["state"] = "absent"
        diff["after"]["state"] = "directory"
        if module.check_mode:
            return True, diff
        path.mkdir(parents=True)
    elif not path.is_dir():
        raise ValueError(f"{path} exists and is not a directory")
    wanted = {"path": str(path), **{key: entry.get(key) for key in ("owner", "group", "mode")}}
    arguments = module.load_file_common_arguments(wanted)
    return module.set_fs_attributes_if_different(arguments, created, diff=diff), diff


def remove_path(path: Path, check: bool = False) -> str:
    """Remove `path`: a directory with everything in it, a link itself (never what it points
    to). What was there ("directory", "file", "link"), "" when nothing was. Check mode removes
    nothing."""
    if path.is_symlink():
        found = "link"
    elif path.is_dir():
        found = "directory"
    elif path.exists():
        found = "file"
    else:
        return ""
    if not check:
        if found == "directory":
            shutil.rmtree(path)
        else:
            path.unlink()
    return found


def fsync_directory(path: Path) -> None:
    """Make a rename or a new link in `path` durable."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)

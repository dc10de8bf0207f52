#!/usr/bin/python
"""Unpack a packed release virtualenv into the host's releases directory and mark the build."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: mesh_release
author: MCP Mesh Ops maintainers (!UNKNOWN)
short_description: install a release from a virtualenv another host built, in one step
description:
  - >-
    Installs release I(release_dir) on a host from a tar of its virtualenv (C(<version>/venv/...),
    packed on a host of the same interpreter): the action plugin sends the controller's file
    I(src) to a temporary path of the host and this module unpacks it into the parent of
    I(release_dir), writes I(build_id) into C(<release_dir>/.mesh-build) (root, 0644) and removes
    the temporary file. One transfer and one module run instead of a copy, an unpack and a marker
    written by tasks of their own.
  - >-
    Changes nothing when the marker already holds I(build_id) and the virtualenv is there (the
    file is then not sent). In check mode it reports whether it would install and sends nothing.
  - I(remove) names paths to delete as well (a staging directory an interrupted run left).
options:
  src:
    description: >-
      The packed virtualenv. For the action plugin, a file on the controller; the module itself
      gets the host's temporary copy.
    type: path
  release_dir:
    description: The release directory, C(<install dir>/releases/<version>); it must be absolute.
    type: path
    required: true
  build_id:
    description: The build the controller computed from the source (C(mesh_wheelhouse)'s build_id).
    type: str
    required: true
  remove:
    description: Paths removed after the install (or found there when nothing was installed).
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
- name: Unpack the shared virtualenv into the release
  mcp_mesh.ops.mesh_release:
    src: /tmp/mesh-venv.abc/agent1.tar
    release_dir: "{{ mesh_common_install_dir }}/releases/1.2.0"
    build_id: 3f2a...
    remove: ["{{ mesh_common_install_dir }}/wheelhouse/1.2.0"]
"""

RETURN = r"""
installed:
  description: Whether the release was unpacked (or would be, in check mode).
  type: bool
  returned: always
marker:
  description: The marker file of the build.
  type: str
  returned: always
"""

MARKER = ".mesh-build"


def installed_build(release_dir: Path) -> str:
    """The build id the release's marker holds ('' when there is none or no virtualenv)."""
    try:
        text = (release_dir / MARKER).read_text().strip()
    except OSError:
        return ""
    return text if (release_dir / "venv" / "bin" / "python").exists() else ""


def write_marker(release_dir: Path, build_id: str) -> None:
    """The marker through a temporary file renamed over it: a half-written one is never read."""
    fd, temporary = tempfile.mkstemp(dir=release_dir, prefix=f".{MARKER}.")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w") as out:
            out.write(build_id + "\n")
        if os.geteuid() == 0:
            os.chown(temporary, 0, 0)
        Path(temporary).replace(release_dir / MARKER)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_paths(paths: list[str]) -> bool:
    removed = False
    for path in map(Path, paths):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            removed = True
        elif path.exists() or path.is_symlink():
            path.unlink()
            removed = True
    return removed


def install(
    release_dir: Path, build_id: str, src: Path | None, remove: list[str], check: bool
) -> dict[str, object]:
    result: dict[str, object] = {"marker": str(release_dir / MARKER)}
    if installed_build(release_dir) == build_id:
        if src is not None:
            src.unlink(missing_ok=True)
        would_remove = any(Path(p).exists() for p in remove)
        changed = would_remove if check else remove_paths(remove)
        return result | {"changed": changed, "installed": False}
    if check:
        return result | {"changed": True, "installed": True}
    if src is None or not src.is_file():
        raise ValueError(f"release {release_dir.name} is not installed and no archive was sent")
    release_dir.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["tar", "-C", str(release_dir.parent), "-xf", str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    src.unlink(missing_ok=True)
    if done.returncode != 0:
        raise ValueError(f"tar could not unpack the virtualenv: {done.stderr.strip()[-2000:]}")
    if not (release_dir / "venv" / "bin" / "python").exists():
        raise ValueError(f"the archive holds no {release_dir.name}/venv/bin/python")
    write_marker(release_dir, build_id)
    remove_paths(remove)
    return result | {"changed": True, "installed": True}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path"},
            "release_dir": {"type": "path", "required": True},
            "build_id": {"type": "str", "required": True},
            "remove": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    release_dir = Path(module.params["release_dir"])
    if not release_dir.is_absolute():
        module.fail_json(msg=f"release_dir must be an absolute path, not {release_dir}")
    src = Path(module.params["src"]) if module.params["src"] else None
    try:
        result = install(
            release_dir, module.params["build_id"], src, module.params["remove"], module.check_mode
        )
    except (OSError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
"""A host's release in one module run each step: read what it has and create the install
directories, install a release from a virtualenv another host built, make a release current."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mcp_mesh.ops.plugins.module_utils.mesh_paths import (
    ensure_directory,
    fsync_directory,
    remove_path,
)

DOCUMENTATION = r"""
module: mesh_release
author: MCP Mesh Ops maintainers (!UNKNOWN)
short_description: a host's release (read, install, make current), each step in one module run
description:
  - >-
    The steps of a release on a host, each one module run on the host instead of several tasks
    (each run starts Python on the host and costs the controller a worker). I(release_dir) is
    C(<install dir>/releases/<version>): the install directory is its grandparent.
  - >-
    I(state=prepared) creates the install directory and its C(releases) (0755) and C(wheelhouse)
    (0700) directories (owned by root when the module runs as root; an existing one is corrected)
    and returns what the host has: the build in the release's marker (I(build)), whether its
    virtualenv is there (I(venv)), whether that is I(build_id) (I(present)) and where
    C(<install dir>/current) points (I(current)). Check mode creates nothing and reports the same;
    C(--diff) shows each directory's state, owner, group and mode before and after.
  - >-
    I(state=installed) installs the release from a tar of its virtualenv (C(<version>/venv/...),
    packed on a host of the same interpreter): the action plugin sends the controller's file
    I(src) to a temporary path of the host and this module unpacks it into the parent of
    I(release_dir), writes I(build_id) into C(<release_dir>/.mesh-build) (root, 0644) and removes
    the temporary file. It changes nothing when the marker already holds I(build_id) and the
    virtualenv is there (the file is then not sent). In check mode it reports whether it would
    install and sends nothing. I(remove) names paths to delete as well (a staging directory an
    interrupted run left).
  - >-
    I(state=current) makes the release current: when C(<install dir>/current) points elsewhere,
    C(<install dir>/previous) is pointed at the release it pointed at, then C(current) at
    I(release_dir), each by renaming a new symlink over the old one, so a reader never finds no
    link. Reports C(changed) only when a link changed; check mode changes nothing and reports
    the same, and C(--diff) shows each link's target before and after. Returns the release
    replaced (I(replaced)), empty when the host had no current release.
options:
  state:
    description: >-
      C(prepared) (directories and facts), C(installed) (install from I(src)) or C(current)
      (make the release current).
    type: str
    choices: [prepared, installed, current]
    default: installed
  src:
    description: >-
      The packed virtualenv (I(state=installed) only). For the action plugin, a file on the
      controller; the module itself gets the host's temporary copy.
    type: path
  release_dir:
    description: The release directory, C(<install dir>/releases/<version>); it must be absolute.
    type: path
    required: true
  build_id:
    description: >-
      The build the controller computed from the source (C(mesh_wheelhouse)'s build_id); required
      by I(state=installed) and I(state=prepared).
    type: str
  remove:
    description: >-
      Paths removed after the install (or found there when nothing was installed);
      I(state=installed) only.
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
- name: Create the install directories and read which build the host has
  mcp_mesh.ops.mesh_release:
    state: prepared
    release_dir: "{{ mesh_common_install_dir }}/releases/1.2.0"
    build_id: 3f2a...
  register: release_facts

- name: Unpack the shared virtualenv into the release
  mcp_mesh.ops.mesh_release:
    src: /tmp/mesh-venv.abc/agent1.tar
    release_dir: "{{ mesh_common_install_dir }}/releases/1.2.0"
    build_id: 3f2a...
    remove: ["{{ mesh_common_install_dir }}/wheelhouse/1.2.0"]

- name: Point current at release 1.2.0 (the replaced one becomes previous)
  mcp_mesh.ops.mesh_release:
    state: current
    release_dir: "{{ mesh_common_install_dir }}/releases/1.2.0"
"""

RETURN = r"""
installed:
  description: Whether the release was unpacked (or would be, in check mode).
  type: bool
  returned: when state is installed
marker:
  description: The marker file of the build.
  type: str
  returned: when state is installed
build:
  description: The build id the release's marker holds, empty when it has none.
  type: str
  returned: when state is prepared
venv:
  description: Whether the release's virtualenv (C(venv/bin/python)) is there.
  type: bool
  returned: when state is prepared
present:
  description: Whether the release holds build I(build_id) with its virtualenv.
  type: bool
  returned: when state is prepared
current:
  description: >-
    Where C(<install dir>/current) points, empty when it is no link (before this run: with
    I(state=prepared); after the switch, I(release_dir), with I(state=current)).
  type: str
  returned: when state is prepared or current
replaced:
  description: The release C(current) pointed at before the switch, empty when there was none.
  type: str
  returned: when state is current
previous:
  description: Where C(<install dir>/previous) points after the switch, empty when it is no link.
  type: str
  returned: when state is current
changed_paths:
  description: The install directories created or corrected (or that would be, in check mode).
  type: list
  elements: str
  returned: when state is prepared
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


def remove_paths(paths: list[str], check: bool = False) -> bool:
    """Remove each of `paths` that is there; whether any was (check mode removes nothing)."""
    return any([remove_path(Path(path), check) for path in paths])  # a list: every path goes


def install(
    release_dir: Path, build_id: str, src: Path | None, remove: list[str], check: bool
) -> dict[str, object]:
    result: dict[str, object] = {"marker": str(release_dir / MARKER)}
    if installed_build(release_dir) == build_id:
        if src is not None:
            src.unlink(missing_ok=True)
        changed = remove_paths(remove, check)
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


# The install directory's own directories and their modes, a parent before its children.
INSTALL_DIRS = (("", 0o755), ("releases", 0o755), ("wheelhouse", 0o700))


def install_dir_of(release_dir: Path) -> Path:
    """<install dir> of <install dir>/releases/<version>."""
    if release_dir.parent.name != "releases":
        raise ValueError(f"release_dir must be <install dir>/releases/<version>, not {release_dir}")
    return release_dir.parent.parent


def link_target(link: Path) -> str:
    """Where `link` points ('' when there is nothing); anything but a symlink is refused."""
    if link.is_symlink():
        return os.path.normpath(link.parent / link.readlink())
    if link.exists():
        raise ValueError(f"{link} is not a symlink")
    return ""


def replace_link(link: Path, target: str) -> None:
    """Point `link` at `target` by renaming a new link over it: readers never see no link."""
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    try:
        temporary.replace(link)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(link.parent)


def prepare(module: AnsibleModule, release_dir: Path, build_id: str) -> dict[str, Any]:
    """Create the install directories and say what the host has of the release."""
    install_dir = install_dir_of(release_dir)
    changed_paths, diffs = [], []
    for name, mode in INSTALL_DIRS:
        path = install_dir / name if name else install_dir
        owner = "root" if os.geteuid() == 0 else None
        entry = {"path": str(path), "owner": owner, "group": owner, "mode": f"{mode:04o}"}
        changed, diff = ensure_directory(module, entry)
        if changed:
            changed_paths.append(str(path))
            diffs.append(diff)
    try:
        build = (release_dir / MARKER).read_text().strip()
    except OSError:
        build = ""
    venv = (release_dir / "venv" / "bin" / "python").exists()
    return {
        "changed": bool(changed_paths),
        "changed_paths": changed_paths,
        "diff": diffs,
        "build": build,
        "venv": venv,
        "present": venv and build == build_id,
        "current": link_target(install_dir / "current"),
    }


def switch(release_dir: Path, check: bool) -> dict[str, Any]:
    """Make the release current, the replaced one previous."""
    install_dir = install_dir_of(release_dir)
    current, previous = install_dir / "current", install_dir / "previous"
    target = os.path.normpath(release_dir)
    replaced, was_previous = link_target(current), link_target(previous)
    new_previous = replaced if replaced and replaced != target else was_previous
    diffs = [
        {
            "before": {"path": str(link), "state": "link" if old else "absent", "src": old},
            "after": {"path": str(link), "state": "link", "src": new},
        }
        for link, old, new in ((previous, was_previous, new_previous), (current, replaced, target))
        if old != new
    ]
    if not check and diffs:
        if not release_dir.is_dir():
            raise ValueError(f"release {release_dir} is not installed")
        if new_previous != was_previous:
            replace_link(previous, new_previous)
        if replaced != target:
            replace_link(current, target)
    return {
        "changed": bool(diffs),
        "diff": diffs,
        "current": target,
        "replaced": replaced,
        "previous": new_previous,
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {
                "type": "str",
                "choices": ["prepared", "installed", "current"],
                "default": "installed",
            },
            "src": {"type": "path"},
            "release_dir": {"type": "path", "required": True},
            "build_id": {"type": "str"},
            "remove": {"type": "list", "elements": "path", "default": []},
        },
        required_if=[("state", "installed", ["build_id"]), ("state", "prepared", ["build_id"])],
        supports_check_mode=True,
    )
    params = module.params
    release_dir = Path(params["release_dir"])
    if not release_dir.is_absolute():
        module.fail_json(msg=f"release_dir must be an absolute path, not {release_dir}")
    if params["state"] != "installed" and (params["src"] or params["remove"]):
        module.fail_json(msg="src and remove go with state=installed only")
    src = Path(params["src"]) if params["src"] else None
    try:
        if params["state"] == "prepared":
            result = prepare(module, release_dir, params["build_id"])
        elif params["state"] == "current":
            result = switch(release_dir, module.check_mode)
        else:
            result = install(
                release_dir, params["build_id"], src, params["remove"], module.check_mode
            )
    except (OSError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

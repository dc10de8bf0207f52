#!/usr/bin/python
"""Write a service's directories and files, each checked before it replaces the live one, in one
module run."""

from __future__ import annotations

import base64
import os
import shlex
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
module: mesh_files
author: MCP Mesh Ops maintainers (!UNKNOWN)
short_description: several directories and files, each with its owner, group and mode, in one step
description:
  - >-
    What a loop of C(ansible.builtin.file) (directories, paths removed) followed by
    C(ansible.builtin.template) or C(ansible.builtin.copy) tasks (files) does, in one module run on
    the host instead of one or two per path (each run starts Python on the host and costs the
    controller a worker).
  - >-
    The paths in I(absent) go first: each one there is removed (a directory with everything in
    it, a link itself), as C(ansible.builtin.file) with C(state=absent) does.
  - >-
    Directories come next, in their order, created when missing (their parents too) and
    corrected when their owner, group or mode differ. Then the files, in their order: a file whose
    content differs is written to a temporary file beside it with its owner, group and mode, run
    through I(validate) when given, and renamed over the live one (atomic); a rejected file
    leaves the live one as it was, and the module fails naming it, with the validator's output.
    Files before it in the list stay written, as separate tasks would have left them.
  - >-
    The action plugin renders each file's I(src) template on the controller (as
    C(ansible.builtin.template) does: trim_blocks, C(ansible_managed)), with the file's entry as the
    variable I(template_var); the module gets the text.
  - >-
    Reports C(changed) when anything was created or corrected, and which paths in
    I(changed_paths). Check mode reports the same without touching anything (validators do not
    run, as with C(template)); C(--diff) shows each file's text before and after, and each
    directory's and file's owner, group and mode. The content of a I(secret) file is never shown,
    in the output, the diff or an error: only that it changes.
options:
  absent:
    description: Absolute paths removed when they are there, before anything is made.
    type: list
    elements: path
    default: []
  directories:
    description: The directories, in the order they are made (a parent before its children).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the directory.
        type: path
        required: true
      owner: &owner
        description: Its owning user (name or id).
        type: str
      group: &group
        description: Its group (name or id).
        type: str
      mode: &mode
        description: Its mode, octal as a string (C("0750")).
        type: raw
  files:
    description: >-
      The files, in the order they are written (a file another one's validator reads comes
      first). For the action plugin an entry has I(src) (a template) or I(content), and may carry
      other keys its template reads.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Absolute path of the file; its directory must exist.
        type: path
        required: true
      content:
        description: The text of a file that may be shown. The action sets it from I(src).
        type: str
      secret_content:
        description: >-
          The text of a file never shown (keys, tokens), base64-encoded. The action sets it from
          I(src) or I(content) when the entry has C(secret=true). Base64 has no newline:
          AnsibleModule logs a list option to the host's journal as its repr, where a text with
          newlines would no longer match the no_log value that masks it.
        type: str
      owner: *owner
      group: *group
      mode: *mode
      validate:
        description: >-
          A command run on the new file before it replaces the live one, C(%s) standing for
          its path; a non-zero exit refuses it.
        type: str
"""

EXAMPLES = r"""
- name: Write a service's directories, env file and unit
  mcp_mesh.ops.mesh_files:
    template_var: mesh_common_file
    directories:
      - {path: /srv/example, owner: example, group: example, mode: "0750"}
    files:
      - src: example.env.j2
        dest: /etc/example/example.env
        owner: root
        group: example
        mode: "0640"
        secret: true
        validate: /opt/example/bin/example check-config --env-file %s
      - {src: example.service.j2, dest: /etc/systemd/system/example.service, mode: "0644"}
"""

RETURN = r"""
changed_paths:
  description: >-
    The paths removed and the directories and files created or changed (or that would be, in
    check mode).
  type: list
  elements: str
  returned: always
new_files:
  description: >-
    The files of I(changed_paths) that did not exist before. A new systemd unit needs no
    daemon-reload: systemd reads a unit it has not loaded when it is first named.
  type: list
  elements: str
  returned: always
"""

NOT_SHOWN = "(secret: its content is not shown)"


class Refused(Exception):
    """A file's check refused it; the live file is unchanged."""


def attributes(entry: dict[str, Any], path: str) -> dict[str, Any]:
    return {"path": path, **{key: entry.get(key) for key in ("owner", "group", "mode")}}


def absolute(module: AnsibleModule, path: str) -> str:
    if not Path(path).is_absolute():
        module.fail_json(msg=f"{path} is not an absolute path")
    return path


def read_current(module: AnsibleModule, dest: str) -> bytes | None:
    """The live file's bytes; None when there is none."""
    target = Path(dest)
    if target.is_dir():
        module.fail_json(msg=f"{dest} is a directory, not a file")
    try:
        return target.read_bytes()
    except FileNotFoundError:
        return None


def content_diff(dest: str, before: bytes | None, after: bytes, secret: bool) -> dict[str, Any]:
    if secret:
        return {"prepared": f"{dest}: {'changed' if before is not None else 'new'}, {NOT_SHOWN}\n"}
    return {
        "before_header": dest if before is not None else f"{dest} (absent)",
        "after_header": dest,
        "before": (before or b"").decode("utf-8", "replace"),
        "after": after.decode("utf-8", "replace"),
    }


def replace(module: AnsibleModule, entry: dict[str, Any], dest: str, new: bytes) -> None:
    """Write `new` beside `dest` with its attributes, validate it, rename it over `dest`."""
    directory = Path(dest).parent
    if not directory.is_dir():
        module.fail_json(msg=f"{dest} was not written: its directory {directory} does not exist")
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{Path(dest).name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(new)
            stream.flush()
            os.fsync(stream.fileno())
        arguments = module.load_file_common_arguments(attributes(entry, temporary))
        module.set_fs_attributes_if_different(arguments, True)
        if entry.get("validate"):
            validate(module, entry["validate"], temporary, dest)
        Path(temporary).replace(dest)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(directory)


def validate(module: AnsibleModule, command: str, temporary: str, dest: str) -> None:
    if command.count("%s") != 1:
        module.fail_json(msg=f"the validate command of {dest} must name the file once, as %s")
    rc, out, err = module.run_command(command.replace("%s", shlex.quote(temporary)))
    if rc != 0:
        said = " ".join(part.strip() for part in (err, out) if part.strip())
        raise Refused(
            f"{dest} was not changed: its check ({shlex.split(command)[0]}) refused it: {said}"
        )


def ensure_file(
    module: AnsibleModule, entry: dict[str, Any]
) -> tuple[bool, bool, list[dict[str, Any]]]:
    """Write one file as `entry` says; (changed, new: it did not exist, diffs)."""
    dest = absolute(module, entry["dest"])
    secret = entry.get("secret_content") is not None
    if secret:
        try:
            new = base64.b64decode(entry["secret_content"], validate=True)
        except ValueError:
            module.fail_json(msg=f"{dest}: secret_content is not base64")
    elif entry.get("content") is not None:
        new = entry["content"].encode("utf-8")
    else:
        module.fail_json(msg=f"{dest}: give content or secret_content")
    before = read_current(module, dest)
    if before != new:
        if not module.check_mode:
            replace(module, entry, dest, new)
        return True, before is None, [content_diff(dest, before, new, secret)]
    diff: dict[str, Any] = {"before": {"path": dest}, "after": {"path": dest}}
    arguments = module.load_file_common_arguments(attributes(entry, dest))
    changed = module.set_fs_attributes_if_different(arguments, False, diff=diff)
    return changed, False, [diff] if changed else []


def main() -> None:
    attribute_options = {
        "owner": {"type": "str"},
        "group": {"type": "str"},
        "mode": {"type": "raw"},
    }
    module = AnsibleModule(
        argument_spec={
            "absent": {"type": "list", "elements": "path", "default": []},
            "directories": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {"path": {"type": "path", "required": True}, **attribute_options},
            },
            "files": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "dest": {"type": "path", "required": True},
                    "content": {"type": "str"},
                    "secret_content": {"type": "str", "no_log": True},
                    "validate": {"type": "str"},
                    **attribute_options,
                },
                "mutually_exclusive": [("content", "secret_content")],
                "required_one_of": [("content", "secret_content")],
            },
        },
        supports_check_mode=True,
    )
    changed_paths: list[str] = []
    new_files: list[str] = []
    diffs: list[dict[str, Any]] = []
    for path in module.params["absent"]:
        try:
            found = remove_path(Path(absolute(module, path)), module.check_mode)
        except OSError as exc:
            module.fail_json(msg=f"cannot remove {path}: {exc}", changed=bool(changed_paths),
                             changed_paths=changed_paths)  # fmt: skip
        if found:
            changed_paths.append(path)
            diffs.append({"before": {"path": path, "state": found},
                          "after": {"path": path, "state": "absent"}})  # fmt: skip
    for entry in module.params["directories"]:
        try:
            changed, diff = ensure_directory(module, entry)
        except (OSError, ValueError) as exc:
            module.fail_json(msg=str(exc), changed=bool(changed_paths), changed_paths=changed_paths)
        if changed:
            changed_paths.append(entry["path"])
            diffs.append(diff)
    for entry in module.params["files"]:
        try:
            changed, new, file_diffs = ensure_file(module, entry)
        except Refused as refused:  # the files before it stay written, and are named
            module.fail_json(
                msg=str(refused), changed=bool(changed_paths), changed_paths=changed_paths
            )
        if changed:
            changed_paths.append(entry["dest"])
            diffs.extend(file_diffs)
        if new:
            new_files.append(entry["dest"])
    module.exit_json(
        changed=bool(changed_paths), changed_paths=changed_paths, new_files=new_files, diff=diffs
    )


if __name__ == "__main__":
    main()

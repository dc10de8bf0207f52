#!/usr/bin/python
"""Seal a fetched database dump with age on the controller, or open a sealed one."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: mesh_database_age
author: MCP Mesh Ops maintainers (!UNKNOWN)
short_description: age-encrypt a fetched dump to the backup identity's recipient, or decrypt one
description:
  - >-
    Runs on the controller (its interpreter needs C(pyrage), which the repository's virtualenv
    has). C(seal) checks the plain dump's sha256 against the one the host wrote, encrypts it
    to the recipient of I(identity) (the agents' backup identity, C(mesh_agent_backup_identity))
    into C(<path>.age) (mode 0600; C(age -d -i KEY FILE) opens it by hand) and removes the
    plain file; when only C(<path>.age) is there, it changes nothing. C(open) decrypts
    C(<path>.age) into I(dest) (mode 0600); age authenticates every chunk, so a changed or
    truncated file is refused.
requirements:
  - pyrage (on the controller)
options:
  action:
    description: C(seal) a plain dump, or C(open) a sealed one.
    type: str
    choices: [seal, open]
    required: true
  path:
    description: >-
      The plain dump (seal, required) or the sealed C(.age) file (open; else I(backup) in
      I(directory)).
    type: path
  directory:
    description: Where the sealed dumps are (open without I(path)).
    type: path
  backup:
    description: C(latest) or a dump's name (open without I(path)).
    type: str
    default: latest
  prefix:
    description: The dumps' name prefix.
    type: str
    default: mesh-registry
  sha256:
    description: The sha256 the host wrote of the plain dump (seal, required).
    type: str
  dest:
    description: Where the plaintext goes (open, required).
    type: path
  identity:
    description: The age identity (C(AGE-SECRET-KEY-1...)). Never logged.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Check the copy's sha256 against the host's and encrypt it to the backup identity
  mcp_mesh.ops.mesh_database_age:
    action: seal
    path: backups/db1/mesh-registry-20260101T000000Z.dump
    sha256: "{{ dump.sha256 }}"
    identity: "{{ mesh_agent_backup_identity }}"
  delegate_to: localhost

- name: Decrypt the newest sealed dump
  mcp_mesh.ops.mesh_database_age:
    action: open
    directory: backups/db1
    backup: latest
    dest: /tmp/restore.dump
    identity: "{{ mesh_agent_backup_identity }}"
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: The sealed file (seal) or the plaintext written (open).
  type: str
  returned: always
sha256:
  description: sha256 of I(path).
  type: str
  returned: always
plain_sha256:
  description: sha256 of the plain dump that was sealed.
  type: str
  returned: when seal encrypted a dump
name:
  description: File name of the sealed dump that was opened.
  type: str
  returned: when action is open
"""


class AgeError(Exception):
    """A clear reason, never the identity."""


_SEALED = re.compile(r"^(?P<prefix>[A-Za-z0-9_.-]+)-\d{8}T\d{6}Z\.dump\.age$")


def pick_sealed(directory: Path, prefix: str, wanted: str) -> Path:
    """The controller's sealed dump to restore: the newest (`latest`) or the one named (with
    or without `.dump.age`)."""
    if not wanted or "/" in wanted:
        raise AgeError(f"give a dump's name or latest, not {wanted!r}")
    found = sorted(
        (
            p
            for p in (directory.iterdir() if directory.is_dir() else [])
            if (m := _SEALED.match(p.name)) and m["prefix"] == prefix and p.is_file()
        ),
        key=lambda p: p.name,
    )
    if wanted == "latest":
        if not found:
            raise AgeError(f"no sealed dump of {prefix} in {directory}")
        return found[-1]
    for path in found:
        if wanted in (path.name, path.name[: -len(".age")], path.name[: -len(".dump.age")]):
            return path
    raise AgeError(f"no sealed dump {wanted} in {directory}")


def _identity(text: str) -> Any:
    import pyrage  # the controller's virtualenv

    lines = [line.strip() for line in text.splitlines() if line.strip()]
    keys = [line for line in lines if line.startswith("AGE-SECRET-KEY-1")]
    if len(keys) != 1:
        raise AgeError(
            "mesh_agent_backup_identity must hold one age identity (AGE-SECRET-KEY-1...); "
            "its value is not shown"
        )
    try:
        return pyrage.x25519.Identity.from_str(keys[0])
    except Exception:  # pyrage's message could quote the value
        raise AgeError("mesh_agent_backup_identity is not a valid age X25519 identity") from None


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _write_private(dest: Path, fill: Any) -> None:
    """Write through a 0600 temporary file renamed over `dest`."""
    fd, temporary = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        Path(temporary).replace(dest)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def seal(path: Path, expected: str, identity_text: str) -> dict[str, object]:
    import pyrage

    identity = _identity(identity_text)
    sealed = path.with_name(path.name + ".age")
    if not path.is_file():
        if sealed.is_file():
            return {"changed": False, "path": str(sealed), "sha256": sha256_of(sealed)}
        raise AgeError(f"{path} is not there to seal")
    actual = sha256_of(path)
    if actual != expected:
        raise AgeError(
            f"the controller's copy of {path.name} has sha256 {actual}, the host wrote {expected}"
        )
    with path.open("rb") as plain:
        _write_private(sealed, lambda out: pyrage.encrypt_io(plain, out, [identity.to_public()]))
    path.unlink()
    digest = sha256_of(sealed)
    return {"changed": True, "path": str(sealed), "sha256": digest, "plain_sha256": actual}


def open_sealed(path: Path, dest: Path, identity_text: str) -> dict[str, object]:
    import pyrage

    identity = _identity(identity_text)
    try:
        with path.open("rb") as sealed:
            _write_private(dest, lambda out: pyrage.decrypt_io(sealed, out, [identity]))
    except pyrage.DecryptError as exc:
        raise AgeError(f"age refuses {path.name}: {exc}") from None
    return {"changed": True, "path": str(dest), "sha256": sha256_of(dest)}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "choices": ["seal", "open"], "required": True},
            "path": {"type": "path"},
            "directory": {"type": "path"},
            "backup": {"type": "str", "default": "latest"},
            "prefix": {"type": "str", "default": "mesh-registry"},
            "sha256": {"type": "str"},
            "dest": {"type": "path"},
            "identity": {"type": "str", "required": True, "no_log": True},
        },
        required_if=[
            ("action", "seal", ["sha256", "path"]),
            ("action", "open", ["dest"]),
            ("action", "open", ["path", "directory"], True),
        ],
    )
    params = module.params
    try:
        import pyrage  # noqa: F401
    except ImportError:
        module.fail_json(
            msg="pyrage is not importable by the controller's interpreter: run ansible-playbook "
            "from the repository's virtualenv (make venv)"
        )
    try:
        if params["action"] == "seal":
            result = seal(Path(params["path"]), params["sha256"], params["identity"])
        else:
            sealed = (
                Path(params["path"])
                if params["path"]
                else pick_sealed(Path(params["directory"]), params["prefix"], params["backup"])
            )
            result = open_sealed(sealed, Path(params["dest"]), params["identity"])
            result["name"] = sealed.name
    except (AgeError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

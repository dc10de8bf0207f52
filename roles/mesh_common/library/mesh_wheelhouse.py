#!/usr/bin/python
"""Build (once per version and source) the offline wheelhouse of the MCP Mesh runtime."""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: mesh_wheelhouse
short_description: Build the runtime wheel and a wheelhouse of its dependencies, cached by version
description:
  - Runs on the controller. Reads the runtime version from I(source_dir). When the cache holds
    no wheelhouse for that version built from the same source, runs C(pip wheel) into a
    temporary directory, packs the wheels into one uncompressed tar archive and moves the
    result into C(<cache_dir>/<version>/) in one rename.
  - The build id is a digest of the source files, so a rebuilt tree with an unchanged version
    (a development build) is noticed; a changed version always gets its own directory.
  - A lock file serialises concurrent playbook runs that share the cache.
options:
  source_dir:
    description: Source tree holding C(pyproject.toml) and C(runtime/mcp_mesh_sdk/__init__.py).
    type: path
    required: true
  cache_dir:
    description: Cache root; one sub-directory per version.
    type: path
    required: true
  python:
    description: Interpreter whose pip builds the wheels.
    type: str
    required: true
"""

RETURN = r"""
version:
  description: Runtime version read from the source.
  type: str
  returned: always
build_id:
  description: Digest of the source files the wheels were built from.
  type: str
  returned: always
archive:
  description: Tar archive of the wheelhouse (C(wheels/) and C(BUILD_ID)).
  type: str
  returned: always
"""

VERSION_FILE = Path("runtime/mcp_mesh_sdk/__init__.py")
VERSION_PATTERN = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)
# What the built wheel depends on; nothing generated (caches, egg-info) is hashed.
HASHED = ("pyproject.toml", "runtime")
SKIPPED_PARTS = {"__pycache__", ".mypy_cache", "build"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")
ARCHIVE_NAME = "wheelhouse.tar"


def read_version(source: Path) -> str:
    text = (source / VERSION_FILE).read_text(encoding="utf-8")
    match = VERSION_PATTERN.search(text)
    if not match:
        raise ValueError(f"no __version__ in {source / VERSION_FILE}")
    return match.group(1)


def source_files(source: Path) -> list[Path]:
    files: list[Path] = []
    for name in HASHED:
        top = source / name
        if top.is_file():
            files.append(top)
            continue
        for path in top.rglob("*"):
            parts = set(path.relative_to(source).parts)
            if (
                path.is_file()
                and not parts & SKIPPED_PARTS
                and not any(part.endswith(".egg-info") for part in parts)
                and not path.name.endswith(SKIPPED_SUFFIXES)
            ):
                files.append(path)
    return sorted(files)


def build_id(source: Path, version: str) -> str:
    digest = hashlib.sha256(version.encode())
    for path in source_files(source):
        digest.update(str(path.relative_to(source)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cached_build(release_cache: Path) -> str | None:
    marker = release_cache / "BUILD_ID"
    if not (release_cache / ARCHIVE_NAME).is_file() or not marker.is_file():
        return None
    return marker.read_text(encoding="utf-8").strip()


def build(module: AnsibleModule, source: Path, cache: Path, version: str, ident: str) -> None:
    release_cache = cache / version
    work = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=cache))
    try:
        wheels = work / "wheels"
        wheels.mkdir()
        command = [module.params["python"], "-m", "pip", "wheel", "--quiet"]
        command += ["--disable-pip-version-check", "--wheel-dir", str(wheels)]
        # Wheels of earlier builds (any version) are reused: a new release rebuilds only itself.
        for earlier in sorted(cache.glob("*/wheels")):
            command += ["--find-links", str(earlier)]
        command.append(str(source))
        rc, out, err = module.run_command(command, environ_update={"PIP_NO_INPUT": "1"})
        if rc != 0:
            module.fail_json(msg=f"pip wheel failed (exit {rc})", stdout=out, stderr=err)
        (work / "BUILD_ID").write_text(ident + "\n", encoding="utf-8")
        with tarfile.open(work / ARCHIVE_NAME, "w") as archive:
            archive.add(wheels, arcname="wheels")
            archive.add(work / "BUILD_ID", arcname="BUILD_ID")
        work.chmod(0o755)  # mkdtemp makes 0700; the cache is as readable as the repo
        if release_cache.exists():
            stale = cache / f".{version}.stale"
            shutil.rmtree(stale, ignore_errors=True)
            release_cache.replace(stale)
            shutil.rmtree(stale, ignore_errors=True)
        work.replace(release_cache)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "source_dir": {"type": "path", "required": True},
            "cache_dir": {"type": "path", "required": True},
            "python": {"type": "str", "required": True},
        },
        supports_check_mode=True,
    )
    source = Path(module.params["source_dir"])
    cache = Path(module.params["cache_dir"])
    if not (source / "pyproject.toml").is_file():
        module.fail_json(msg=f"mesh_common_source_dir {source} holds no pyproject.toml")
    try:
        version = read_version(source)
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"mesh_common_source_dir: cannot read the runtime version: {exc}")
    wanted = build_id(source, version)
    archive = cache / version / ARCHIVE_NAME
    result = {"version": version, "build_id": wanted, "archive": str(archive)}
    if cached_build(cache / version) == wanted:
        module.exit_json(changed=False, **result)
    if module.check_mode:
        module.exit_json(changed=True, **result)
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building the same version
        if cached_build(cache / version) != wanted:
            build(module, source, cache, version, wanted)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()

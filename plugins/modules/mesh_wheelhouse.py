#!/usr/bin/python
"""Build (once per version and source) the offline wheelhouse of the MCP Mesh runtime."""

from __future__ import annotations

import fcntl
import hashlib
import platform
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: mesh_wheelhouse
author: MCP Mesh Ops maintainers (!UNKNOWN)
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
  targets:
    description:
      - >-
        The hosts' interpreters, each C(MAJOR.MINOR MACHINE GLIBC) as the hosts print them
        (e.g. C(3.13 x86_64 2.41)). Hosts whose Python differs from the controller's
        (Debian 13's 3.13 beside Debian 12's 3.11) get a wheelhouse of their own in
        C(<cache_dir>/<version>-py<MAJOR.MINOR>-<MACHINE>/): the runtime wheel (pure Python)
        and its dependencies' binary wheels for that interpreter, fetched with
        C(pip download --only-binary=:all: --python-version ... --platform manylinux...).
      - Empty (the default) or the controller's own interpreter builds C(<cache_dir>/<version>/).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Build the runtime wheel and its dependencies once per version and interpreter
  mcp_mesh.ops.mesh_wheelhouse:
    source_dir: "{{ mesh_common_source_dir }}"
    cache_dir: "{{ mesh_common_wheelhouse_cache_dir }}"
    python: "{{ mesh_common_controller_python }}"
    targets:
      - 3.11 x86_64 2.36
      - 3.13 x86_64 2.41
  delegate_to: localhost
  run_once: true
  register: wheelhouse
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
  description: Tar archive of the wheelhouse (C(wheels/) and C(BUILD_ID)) for the controller's
    own interpreter.
  type: str
  returned: always
archives:
  description: Each target (as given) -> the tar archive of the wheelhouse for its interpreter.
  type: dict
  returned: always
"""

# What a host prints for `targets` (its interpreter, machine and glibc); wheelhouse.yml runs it.
TARGET_PROBE = (
    "import platform, sys; "
    "print('%d.%d' % sys.version_info[:2], platform.machine(), platform.libc_ver()[1])"
)
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


class Interpreter:
    """A host interpreter as `targets` name it: Python MAJOR.MINOR, machine and glibc."""

    def __init__(self, python: str, machine: str, glibc: str) -> None:
        self.python, self.machine, self.glibc = python, machine, glibc

    @classmethod
    def parse(cls, text: str) -> Interpreter:
        words = text.split()
        if len(words) != 3 or not re.fullmatch(r"3\.\d+", words[0]):
            raise ValueError(f"target {text!r} is not 'MAJOR.MINOR MACHINE GLIBC'")
        if not re.fullmatch(r"\d+\.\d+", words[2]):
            raise ValueError(f"target {text!r}: glibc version {words[2]!r} is not MAJOR.MINOR")
        return cls(*words)

    @property
    def tag(self) -> str:
        """Names the wheelhouse: one per Python version and machine."""
        return f"py{self.python}-{self.machine}"


def controller_tag(python_version: str | None = None, machine: str | None = None) -> str:
    version = python_version or f"{sys.version_info[0]}.{sys.version_info[1]}"
    return f"py{version}-{machine or platform.machine()}"


def manylinux_platforms(machine: str, glibc: str) -> list[str]:
    """pip --platform tags a host of this machine and glibc runs: manylinux_2_5..2_N, the
    legacy aliases, and plain linux_MACHINE."""
    major, minor = (int(part) for part in glibc.split("."))
    tags = [f"manylinux_{major}_{number}_{machine}" for number in range(minor, 4, -1)]
    aliases = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
    tags += [f"{alias}_{machine}" for alias, needs in aliases.items() if minor >= needs]
    return [*tags, f"linux_{machine}"]


def release_dir(cache: Path, version: str, tag: str | None) -> Path:
    """<cache>/<version> for the controller's interpreter, <cache>/<version>-<tag> otherwise."""
    return cache / version if tag is None else cache / f"{version}-{tag}"


def wheel_command(module: AnsibleModule, cache: Path, source: Path, wheels: Path) -> list[str]:
    command = [module.params["python"], "-m", "pip", "wheel", "--quiet"]
    command += ["--disable-pip-version-check", "--wheel-dir", str(wheels)]
    # Wheels of earlier builds (any version) are reused: a new release rebuilds only itself.
    for earlier in sorted(cache.glob("*/wheels")):
        command += ["--find-links", str(earlier)]
    return [*command, str(source)]


def wheel_pins(wheels: Path) -> list[str]:
    """`name==version` of every wheel in a directory (wheel file names: NAME-VERSION-...)."""
    pins = set()
    for wheel in wheels.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        pins.add(f"{name}=={version}")
    return sorted(pins)


def download_command(
    python: str, target: Interpreter, wheels: Path, wheel: Path, constraints: Path | None = None
) -> list[str]:
    """The runtime wheel's dependencies as binary wheels for another interpreter; with
    `constraints`, at the versions the controller's own wheelhouse holds."""
    command = [python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    command += ["--only-binary=:all:", "--implementation", "cp"]
    command += ["--python-version", target.python, "--dest", str(wheels)]
    for tag in manylinux_platforms(target.machine, target.glibc):
        command += ["--platform", tag]
    if constraints is not None:
        command += ["--constraint", str(constraints)]
    return [*command, str(wheel)]


def build(
    module: AnsibleModule,
    source: Path,
    cache: Path,
    version: str,
    ident: str,
    target: Interpreter | None = None,
) -> None:
    release_cache = release_dir(cache, version, target.tag if target else None)
    work = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=cache))
    try:
        wheels = work / "wheels"
        wheels.mkdir()
        env = {"PIP_NO_INPUT": "1"}
        if target is None:
            rc, out, err = module.run_command(
                wheel_command(module, cache, source, wheels), environ_update=env
            )
            if rc != 0:
                module.fail_json(msg=f"pip wheel failed (exit {rc})", stdout=out, stderr=err)
        else:
            own = [module.params["python"], "-m", "pip", "wheel", "--quiet", "--no-deps"]
            own += ["--disable-pip-version-check", "--wheel-dir", str(wheels), str(source)]
            rc, out, err = module.run_command(own, environ_update=env)
            if rc != 0:
                module.fail_json(msg=f"pip wheel failed (exit {rc})", stdout=out, stderr=err)
            runtime = sorted(wheels.glob("*.whl"))
            if len(runtime) != 1:
                module.fail_json(msg=f"pip wheel --no-deps built {len(runtime)} wheels, not 1")
            # Every interpreter gets the dependency versions the controller's wheelhouse holds
            # (built first), so hosts of both releases run the same code.
            own_name = runtime[0].name.split("-")[0]
            pins = [
                pin
                for pin in wheel_pins(cache / version / "wheels")
                if not pin.startswith(f"{own_name}==")
            ]
            constraints = work / "constraints.txt"
            constraints.write_text("".join(pin + "\n" for pin in pins), encoding="utf-8")
            command = download_command(
                module.params["python"], target, wheels, runtime[0], constraints if pins else None
            )
            rc, out, err = module.run_command(command, environ_update=env)
            if rc != 0:
                module.fail_json(
                    msg=f"pip download for Python {target.python} on {target.machine} failed "
                    f"(exit {rc})",
                    stdout=out,
                    stderr=err,
                )
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
            "targets": {"type": "list", "elements": "str", "default": []},
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
    try:
        targets = {text: Interpreter.parse(text) for text in module.params["targets"]}
    except ValueError as exc:
        module.fail_json(msg=f"mesh_wheelhouse targets: {exc}")
    wanted = build_id(source, version)
    own = controller_tag()
    if targets:  # the interpreter given as `python` builds the controller's own wheelhouse
        probe = "import platform, sys; print('%d.%d' % sys.version_info[:2], platform.machine())"
        rc, out, err = module.run_command([module.params["python"], "-c", probe])
        if rc != 0 or len(out.split()) != 2:
            module.fail_json(msg=f"cannot run {module.params['python']}", stderr=err)
        own = controller_tag(*out.split())
    # One build per interpreter other than the controller's, for the oldest glibc among its hosts.
    others: dict[str, Interpreter] = {}
    for target in targets.values():
        if target.tag == own:
            continue
        known = others.get(target.tag)
        if known is None or _glibc(target) < _glibc(known):
            others[target.tag] = target
    archives = {
        text: str(release_dir(cache, version, None if t.tag == own else t.tag) / ARCHIVE_NAME)
        for text, t in targets.items()
    }
    result = {
        "version": version,
        "build_id": wanted,
        "archive": str(cache / version / ARCHIVE_NAME),
        "archives": archives,
    }
    builds: list[Interpreter | None] = [None, *others.values()]
    missing = [
        target
        for target in builds
        if cached_build(release_dir(cache, version, target.tag if target else None)) != wanted
    ]
    if not missing:
        module.exit_json(changed=False, **result)
    if module.check_mode:
        module.exit_json(changed=True, **result)
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building the same version
        for target in missing:
            where = release_dir(cache, version, target.tag if target else None)
            if cached_build(where) != wanted:
                build(module, source, cache, version, wanted, target)
    module.exit_json(changed=True, **result)


def _glibc(target: Interpreter) -> tuple[int, ...]:
    return tuple(int(part) for part in target.glibc.split("."))


if __name__ == "__main__":
    main()

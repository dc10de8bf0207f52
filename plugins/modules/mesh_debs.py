#!/usr/bin/python
"""Fill a local package directory with the .deb closure of Debian packages (PostgreSQL for
mesh_database, Prometheus and Alertmanager for mesh_monitoring), for hosts with no route out.
The roles call it through mesh_common's tasks/offline_packages.yml."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: mesh_debs
author: MCP Mesh Ops maintainers (!UNKNOWN)
short_description: Fetch the .deb closure of packages into a flat repository, packed for the hosts
description:
  - >-
    Runs on the controller. With I(fetch), resolves the closure of I(packages) from the
    controller's own apt sources as if nothing were installed (C(apt-get -s install) against an
    empty dpkg status, recommends left out), downloads each missing C(.deb) with
    C(apt-get download NAME=VERSION) (apt checks every file against its signed index), removes
    the C(.deb) files the closure no longer names, and records the release (codename and
    architecture) in C(RELEASE). When the lists lack a package, runs C(apt-get update) once.
  - >-
    Without I(fetch), the directory was filled by hand (README): it must hold a C(.deb) of each
    of I(packages).
  - >-
    Either way, writes the flat repository index C(Packages) (C(dpkg-scanpackages)) when it does
    not list exactly the directory's C(.deb) files, and packs the directory into I(archive), a
    tar whose bytes only depend on the files (one copy and one checksum per run on the hosts).
  - Changed only when a file was downloaded or removed, the index rewritten or the archive replaced.
  - The controller must run the release of the hosts (I(targets)) for the automatic fetch.
requirements:
  - dpkg-dev (C(dpkg-scanpackages)) and apt on the controller
options:
  dest:
    description: The package directory.
    type: path
    required: true
  archive:
    description: The tar the directory is packed into (outside I(dest)).
    type: path
    required: true
  packages:
    description: Packages to install on the hosts; their closure is fetched.
    type: list
    elements: str
    required: true
  fetch:
    description: Fetch from the controller's apt sources (false, the directory was filled by hand).
    type: bool
    default: true
  targets:
    description: The hosts' C(CODENAME ARCHITECTURE) (e.g. C(bookworm amd64)).
    type: list
    elements: str
    default: []
  update_lists:
    description: Run C(apt-get update) once when the controller's lists lack a package.
    type: bool
    default: true
  hosts:
    description: What the hosts are called in error messages (e.g. C(the database hosts)).
    type: str
    default: the hosts
  fetch_variable:
    description: The calling role's variable that turns the fetch off, named in error messages.
    type: str
    default: package_fetch
"""

EXAMPLES = r"""
- name: Fetch the PostgreSQL packages into the controller's package directory
  mcp_mesh.ops.mesh_debs:
    dest: .cache/postgresql-debs
    archive: .cache/postgresql-debs.tar
    packages: [postgresql-15, postgresql-client-15]
    targets: [bookworm amd64]
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
release:
  description: C(CODENAME ARCHITECTURE) of the packages.
  type: str
  returned: always
packages:
  description: The C(.deb) files of the directory.
  type: list
  returned: always
downloaded:
  description: The C(.deb) files downloaded in this run.
  type: list
  returned: always
removed:
  description: The C(.deb) files removed (no longer in the closure).
  type: list
  returned: always
archive_sha256:
  description: sha256 of the archive.
  type: str
  returned: always
"""

INDEX = "Packages"
RELEASE = "RELEASE"
LOCK = ".lock"
# `Inst NAME [OLD] (VERSION ORIGIN... [ARCH])` as `apt-get -s install` prints it.
_INST = re.compile(
    r"^Inst (?P<name>\S+) (?:\[[^\]]*\] )?\((?P<version>\S+) .*\[(?P<arch>[^\]]+)\]\)"
)
_MISSING = re.compile(
    r"Unable to locate package (\S+)|Package '?(\S+?)'? has no installation candidate"
)

Runner = Callable[[list[str], Path | None], tuple[int, str, str]]


class DebsError(Exception):
    """A clear reason the directory cannot be filled."""


@dataclass(frozen=True, order=True)
class Deb:
    name: str
    version: str
    arch: str

    @property
    def filename(self) -> str:
        """The file name `apt-get download` writes (an epoch's colon becomes %3a)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


def parse_simulation(text: str) -> list[Deb]:
    """The packages `apt-get -s install` would install, in its order."""
    debs = []
    for line in text.splitlines():
        match = _INST.match(line)
        if match:
            debs.append(Deb(match["name"], match["version"], match["arch"]))
    return debs


def lacking(text: str) -> list[str]:
    """The packages apt's lists do not know, from its error output."""
    return sorted({a or b for a, b in _MISSING.findall(text)})


def simulate_command(packages: Iterable[str]) -> list[str]:
    """The closure from nothing installed: any host of the release finds what it lacks in it."""
    return [
        "apt-get",
        "-s",
        "-o",
        "Dir::State::status=/dev/null",
        "-o",
        "APT::Install-Recommends=false",
        "-o",
        "APT::Install-Suggests=false",
        "install",
        *packages,
    ]


@dataclass(frozen=True)
class Naming:
    """How error messages name the hosts and the calling role's fetch switch."""

    hosts: str = "the hosts"
    fetch_variable: str = "package_fetch"


def closure(
    run: Runner, packages: list[str], update_lists: bool, naming: Naming = Naming()
) -> tuple[list[Deb], bool]:
    """The .deb closure of `packages` -> (debs, whether apt-get update ran)."""
    updated = False
    while True:
        rc, out, err = run(simulate_command(packages), None)
        if rc == 0:
            debs = parse_simulation(out)
            if not debs:
                raise DebsError(f"apt-get resolved nothing for {' '.join(packages)}")
            return debs, updated
        missing = lacking(out + err)
        if missing and update_lists and not updated:
            rc, _, err = run(["apt-get", "update"], None)
            if rc != 0:
                raise DebsError(f"apt-get update failed on the controller: {err.strip()}")
            updated = True
            continue
        if missing:
            raise DebsError(
                f"the controller's apt sources have no {', '.join(missing)}: the controller must "
                f"run the Debian release of {naming.hosts} with its main component (or fill "
                f"the package directory by hand and set {naming.fetch_variable}: false)"
            )
        raise DebsError(f"apt-get cannot resolve {' '.join(packages)}: {(err or out).strip()}")


def plan(present: Iterable[str], wanted: Iterable[Deb]) -> tuple[list[Deb], list[str]]:
    """What to download and which present .deb files to remove."""
    names = {deb.filename for deb in wanted}
    have = set(present)
    return sorted(d for d in set(wanted) if d.filename not in have), sorted(have - names)


def deb_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob("*.deb") if path.is_file())


def indexed_files(index_text: str) -> list[str]:
    """The file names a Packages index lists (`Filename: ./x.deb`)."""
    files = []
    for line in index_text.splitlines():
        if line.startswith("Filename:"):
            files.append(Path(line.split(":", 1)[1].strip()).name)
    return sorted(files)


def index_is_current(directory: Path) -> bool:
    index = directory / INDEX
    if not index.is_file():
        return False
    return indexed_files(index.read_text(errors="replace")) == deb_files(directory)


def write_index(run: Runner, directory: Path) -> None:
    """Packages for `deb [trusted=yes] file:/DIR ./` (dpkg-scanpackages), replaced in one rename."""
    rc, out, err = run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], directory)
    if rc != 0:
        raise DebsError(f"dpkg-scanpackages failed (is dpkg-dev installed?): {err.strip()}")
    _replace(directory / INDEX, out.encode())


def provided_names(directory: Path) -> set[str]:
    """Package names the directory's files hold (from their file names)."""
    return {name.split("_", 1)[0] for name in deb_files(directory)}


def pack(directory: Path) -> bytes:
    """A tar of the .deb files, the index and RELEASE whose bytes depend only on them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in [*deb_files(directory), INDEX, RELEASE]:
            path = directory / name
            if not path.is_file():
                continue
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mode = 0o644
            info.mtime = 0
            info.uname = info.gname = "root"
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return buffer.getvalue()


def update_archive(directory: Path, archive: Path) -> tuple[bool, str]:
    """Replace `archive` when the packed directory differs -> (changed, sha256)."""
    data = pack(directory)
    digest = hashlib.sha256(data).hexdigest()
    if archive.is_file() and _sha256(archive) == digest:
        return False, digest
    _replace(archive, data)
    return True, digest


def controller_release(run: Runner) -> str:
    fields = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        fields[key] = value.strip().strip('"')
    rc, arch, err = run(["dpkg", "--print-architecture"], None)
    if rc != 0:
        raise DebsError(f"dpkg --print-architecture failed: {err.strip()}")
    return f"{fields.get('VERSION_CODENAME', '?')} {arch.strip()}"


def check_targets(release: str, targets: Iterable[str], naming: Naming = Naming()) -> None:
    other = sorted({" ".join(t.split()) for t in targets} - {release})
    if other:
        raise DebsError(
            f"the controller runs {release}, {naming.hosts} {', '.join(other)}: packages "
            "fetched here would not fit them. Fetch on a machine of the hosts' release and set "
            f"{naming.fetch_variable}: false (the role's README says how)"
        )


def fill(
    run: Runner,
    dest: Path,
    packages: list[str],
    targets: list[str],
    update_lists: bool,
    naming: Naming = Naming(),
) -> dict[str, object]:
    """Download what the closure lacks, remove what it no longer names, record the release."""
    release = controller_release(run)
    check_targets(release, targets, naming)
    debs, updated = closure(run, packages, update_lists, naming)
    recorded = dest / RELEASE
    if recorded.is_file() and recorded.read_text().strip() != release:
        for name in deb_files(dest):  # another release's packages: none of them fit
            (dest / name).unlink()
    missing, stale = plan(deb_files(dest), debs)
    downloaded = []
    if missing:
        with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as scratch:
            Path(scratch).chmod(0o755)  # apt's sandbox user (_apt) writes here
            argv = ["apt-get", "download", *(f"{d.name}={d.version}" for d in missing)]
            rc, _, err = run(argv, Path(scratch))
            if rc != 0:
                raise DebsError(f"apt-get download failed on the controller: {err.strip()}")
            for deb in missing:
                got = Path(scratch) / deb.filename
                if not got.is_file():
                    raise DebsError(f"apt-get download did not write {deb.filename}")
                got.replace(dest / deb.filename)
                downloaded.append(deb.filename)
    for name in stale:
        (dest / name).unlink()
    if not recorded.is_file() or recorded.read_text().strip() != release:
        _replace(recorded, f"{release}\n".encode())
    return {"release": release, "downloaded": downloaded, "removed": stale, "apt_updated": updated}


def prepare(
    run: Runner,
    dest: Path,
    archive: Path,
    packages: list[str],
    fetch: bool,
    targets: list[str],
    update_lists: bool = True,
    naming: Naming = Naming(),
) -> dict[str, object]:
    """The whole job, under a lock: fill (or check) the directory, index it, pack it."""
    dest.mkdir(parents=True, exist_ok=True)
    with (dest / LOCK).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if fetch:
            result = fill(run, dest, packages, targets, update_lists, naming)
        else:
            absent = sorted(set(packages) - provided_names(dest))
            if absent:
                raise DebsError(
                    f"{dest} holds no .deb of {', '.join(absent)}: fill it as the role's README "
                    f"says, or set {naming.fetch_variable}: true"
                )
            recorded = dest / RELEASE
            release = recorded.read_text().strip() if recorded.is_file() else ""
            if release:
                check_targets(release, targets, naming)
            result = {"release": release, "downloaded": [], "removed": [], "apt_updated": False}
        indexed = False
        if result["downloaded"] or result["removed"] or not index_is_current(dest):
            write_index(run, dest)
            indexed = True
        archive.parent.mkdir(parents=True, exist_ok=True)
        packed, digest = update_archive(dest, archive)
    changed = bool(result["downloaded"] or result["removed"] or indexed or packed)
    return {
        **result,
        "changed": changed,
        "indexed": indexed,
        "packages": deb_files(dest),
        "archive": str(archive),
        "archive_sha256": digest,
    }


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _replace(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(temporary).chmod(0o644)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _runner(command: list[str], cwd: Path | None) -> tuple[int, str, str]:
    env = {**os.environ, "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    return done.returncode, done.stdout, done.stderr


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dest": {"type": "path", "required": True},
            "archive": {"type": "path", "required": True},
            "packages": {"type": "list", "elements": "str", "required": True},
            "fetch": {"type": "bool", "default": True},
            "targets": {"type": "list", "elements": "str", "default": []},
            "update_lists": {"type": "bool", "default": True},
            "hosts": {"type": "str", "default": "the hosts"},
            "fetch_variable": {"type": "str", "default": "package_fetch"},
        },
        supports_check_mode=False,
    )
    params = module.params
    try:
        if shutil.which("dpkg-scanpackages") is None:
            raise DebsError(
                "dpkg-scanpackages is not installed on the controller: apt-get install dpkg-dev"
            )
        result = prepare(
            _runner,
            Path(params["dest"]),
            Path(params["archive"]),
            params["packages"],
            params["fetch"],
            params["targets"],
            params["update_lists"],
            Naming(params["hosts"], params["fetch_variable"]),
        )
    except (DebsError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

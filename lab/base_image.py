"""The Debian roots lab hosts boot from, one per release: built once with debootstrap, cached by
content.

The cache key hashes the suite, the package list and the recipe version, so a changed list
builds a new base next to the old one. A build goes into a temporary directory and is renamed
into place only when complete, under a lock, so an interrupted build never leaves a base that
looks usable.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.errors import LabError
from lab.mirror import find_mirror
from lab.mounts import overlay_lower_dirs, remove_tree
from lab.progress import Progress
from lab.topology import DISTROS

SUITE = "bookworm"  # the default release: Debian 12
SUITES = DISTROS  # the releases a lab host can run (`--agent-distros`): Debian 12 and 13
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-venv",
    "iproute2",
    "sudo",
    "curl",
    "haproxy",
    "procps",  # ps, pgrep, sysctl: what operators and testinfra expect on a host
    "iputils-ping",
)
# Bump when customise() changes what a base holds, so cached bases are rebuilt.
RECIPE_VERSION = 3
CACHE_ROOT = Path(os.environ.get("MESH_LAB_CACHE_DIR", "/var/cache/mcp-mesh-lab"))
MARKER = "etc/mcp-mesh-lab-base.json"

# Units that cannot work in a container without a bus to the outside, or that would reach
# for the network the hosts do not have; masked so a fresh host reports `running`.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "systemd-firstboot.service",
    "systemd-networkd-wait-online.service",
    "getty-static.service",
)
# Installed for the roles to configure, but not started on hosts that do not need it.
DISABLED_UNITS = ("haproxy.service",)

SSHD_CONFIG = """\
# Written by the MCP Mesh lab: key-only root logins, no DNS lookups, room for parallel runs.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
MaxStartups 100:30:300
MaxSessions 100
"""


RESOLV_CONF = """\
# The lab has no DNS server: hosts know each other from /etc/hosts, and a lookup of any
# other name fails at once instead of waiting on a server the lab cannot reach.
options timeout:1 attempts:1
"""


def cache_key(suite: str, packages: Iterable[str], recipe: int = RECIPE_VERSION) -> str:
    spec = {"suite": suite, "packages": sorted(set(packages)), "recipe": recipe}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def base_path(key: str, cache_root: Path = CACHE_ROOT) -> Path:
    return cache_root / f"base-{key}"


def is_complete(path: Path) -> bool:
    return (path / MARKER).is_file()


def ensure_base(
    suite: str = SUITE, packages: Iterable[str] = PACKAGES, cache_root: Path = CACHE_ROOT
) -> Path:
    """The cached base for this suite and package list, built first when missing."""
    validate_suite(suite)
    packages = tuple(packages)
    key = cache_key(suite, packages)
    path = base_path(key, cache_root)
    if is_complete(path):
        return path
    cache_root.mkdir(parents=True, exist_ok=True)
    with _build_lock(cache_root):
        if is_complete(path):  # another run built it while we waited
            return path
        _remove_interrupted_builds(cache_root)
        if path.exists():
            remove_tree(path)
        _build(path, key, suite, packages, cache_root)
    return path


def validate_suite(suite: str) -> str:
    if suite not in SUITES:
        raise LabError(f"the lab builds no '{suite}' hosts; use one of {', '.join(SUITES)}")
    return suite


def current_bases(cache_root: Path = CACHE_ROOT) -> set[Path]:
    """Where the current package list's base of every release lives (built or not)."""
    return {base_path(cache_key(suite, PACKAGES), cache_root) for suite in SUITES}


def prune_other_bases(keep: Path | Iterable[Path]) -> list[Path]:
    """Remove bases of earlier package lists, unless a running host still boots from one.

    The current base of every release in SUITES is kept too: a lab of bookworm hosts only
    must not throw away the trixie base the next mixed lab needs.
    """
    kept = {keep} if isinstance(keep, Path) else set(keep)
    if not kept:
        return []
    cache_root = next(iter(kept)).parent
    kept |= current_bases(cache_root)
    pruned = []
    with _build_lock(cache_root):
        in_use = overlay_lower_dirs()
        for other in sorted(cache_root.glob("base-*")):
            if other in kept or other in in_use:
                continue
            remove_tree(other)
            (cache_root / f"build-{other.name.removeprefix('base-')}.log").unlink(missing_ok=True)
            pruned.append(other)
    return pruned


@contextmanager
def _build_lock(cache_root: Path) -> Iterator[None]:
    with (cache_root / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _remove_interrupted_builds(cache_root: Path) -> None:
    for leftover in cache_root.glob(".building-*"):
        remove_tree(leftover)


def _build(path: Path, key: str, suite: str, packages: tuple[str, ...], root: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap is not installed (run `make system-deps` as root)")
    mirror = find_mirror(suite)
    building = Path(tempfile.mkdtemp(prefix=f".building-{key}-", dir=root))
    log_path = root / f"build-{key}.log"
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(packages)}",
        suite,
        str(building),
        mirror,
    ]
    try:
        with Progress(f"building the {suite} base image") as progress:
            _run_debootstrap(command, log_path, progress)
            progress.update("customising for containers")
            customise(building, key, suite, packages)
            building.rename(path)
            progress.update(f"done in {progress.elapsed():.0f}s")
    except BaseException:
        remove_tree(building)
        raise


def _run_debootstrap(command: list[str], log_path: Path, progress: Progress) -> None:
    with log_path.open("w") as log:
        log.write("$ " + " ".join(command) + "\n")
        child = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert child.stdout is not None
        for line in child.stdout:
            log.write(line)
            stage, detail = debootstrap_stage(line)
            if stage:
                progress.update(stage, detail)
        code = child.wait()
    if code != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
        raise LabError(f"debootstrap failed (exit {code}); full log {log_path}:\n{tail}")


# debootstrap's `I: Verb ...` lines, folded into the few phases a person cares about.
PHASES = {
    "retrieving": "downloading packages",
    "validating": "downloading packages",
    "extracting": "extracting",
    "installing": "installing",
    "unpacking": "installing",
    "configuring": "configuring",
    "base": "finishing",
}


def debootstrap_stage(line: str) -> tuple[str, str]:
    """('downloading packages', 'Retrieving libc6 2.36-9') for `I: Retrieving libc6 2.36-9`.

    Lines that are not debootstrap's `I:` progress give ('', '').
    """
    if not line.startswith("I: "):
        return "", ""
    message = line[3:].strip().rstrip(".")
    verb = message.partition(" ")[0].lower()
    return PHASES.get(verb, "resolving packages"), message


def customise(root: Path, key: str, suite: str, packages: tuple[str, ...]) -> None:
    """Make a fresh debootstrap root boot cleanly, and identically, as an nspawn container."""
    systemctl = ["systemctl", f"--root={root}", "--quiet"]
    subprocess.run([*systemctl, "mask", *MASKED_UNITS], check=True)
    subprocess.run([*systemctl, "disable", *DISABLED_UNITS], check=True)
    dropin = root / "etc/ssh/sshd_config.d/mesh-lab.conf"
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text(SSHD_CONFIG)
    for host_key in (root / "etc/ssh").glob("ssh_host_*"):
        host_key.unlink()  # every host gets its own, written at `up`
    (root / "etc/machine-id").write_text("")
    (root / "etc/default/locale").write_text("LANG=C.UTF-8\n")  # pam_env reads it per login
    resolv = root / "etc/resolv.conf"  # debootstrap copied the build machine's
    resolv.unlink(missing_ok=True)
    resolv.write_text(RESOLV_CONF)
    for archive in (root / "var/cache/apt/archives").glob("*.deb"):
        archive.unlink()
    marker = {"key": key, "suite": suite, "packages": sorted(packages), "recipe": RECIPE_VERSION}
    (root / MARKER).write_text(json.dumps(marker, indent=2) + "\n")

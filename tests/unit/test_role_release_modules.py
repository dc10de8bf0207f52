"""mesh_common's one-step modules: mesh_release unpacks a shared virtualenv and marks the build
(once; check mode touches nothing), mesh_dirs makes several directories in one run with the
check-mode and --diff answers a loop of ansible.builtin.file gives."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "plugins" / "modules"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, LIBRARY / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


release = _load("mesh_release")


def packed_venv(tmp_path: Path, version: str = "1.2.0") -> Path:
    """A tar of <version>/venv as the building host packs it."""
    tree = tmp_path / "built" / version / "venv" / "bin"
    tree.mkdir(parents=True, exist_ok=True)
    (tree / "python").write_text("#!/bin/sh\n")
    (tree / "mcp-mesh-sdk").write_text("#!/bin/sh\n")
    archive = tmp_path / "venv.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "built" / version, arcname=version)
    return archive


def test_a_shared_virtualenv_is_unpacked_marked_and_its_archive_removed(tmp_path: Path) -> None:
    archive = packed_venv(tmp_path)
    release_dir = tmp_path / "opt" / "releases" / "1.2.0"
    staging = tmp_path / "opt" / "wheelhouse" / "1.2.0"
    staging.mkdir(parents=True)  # left by an interrupted run
    result = release.install(release_dir, "build-a", archive, [str(staging)], check=False)
    assert result["changed"] and result["installed"]
    assert (release_dir / "venv" / "bin" / "mcp-mesh-sdk").is_file()
    assert (release_dir / ".mesh-build").read_text() == "build-a\n"
    assert stat.S_IMODE((release_dir / ".mesh-build").stat().st_mode) == 0o644
    assert not archive.exists() and not staging.exists()


def test_the_same_build_again_changes_nothing(tmp_path: Path) -> None:
    release_dir = tmp_path / "opt" / "releases" / "1.2.0"
    release.install(release_dir, "build-a", packed_venv(tmp_path), [], check=False)
    again = release.install(release_dir, "build-a", packed_venv(tmp_path), [], check=False)
    assert again["changed"] is False and again["installed"] is False
    assert release.install(release_dir, "build-a", None, [], check=True)["changed"] is False


def test_check_mode_reports_the_install_and_writes_nothing(tmp_path: Path) -> None:
    release_dir = tmp_path / "opt" / "releases" / "1.2.0"
    result = release.install(release_dir, "build-a", None, [], check=True)
    assert result["changed"] and result["installed"]
    assert not release_dir.exists()
    # Another build of the same version (a development rebuild) is a change too.
    release.install(release_dir, "build-a", packed_venv(tmp_path), [], check=False)
    assert release.install(release_dir, "build-b", None, [], check=True)["changed"]


def test_an_archive_without_the_release_is_refused_and_nothing_is_marked(tmp_path: Path) -> None:
    archive = packed_venv(tmp_path, version="9.9.9")
    release_dir = tmp_path / "opt" / "releases" / "1.2.0"
    with pytest.raises(ValueError, match=r"holds no 1\.2\.0/venv/bin/python"):
        release.install(release_dir, "build-a", archive, [], check=False)
    assert not (release_dir / ".mesh-build").exists()
    with pytest.raises(ValueError, match="no archive was sent"):
        release.install(release_dir, "build-a", None, [], check=False)


def run_dirs(tmp_path: Path, paths: list[dict[str, str]], *args: str) -> tuple[int, str]:
    playbook = tmp_path / "play.yml"
    task = {"mcp_mesh.ops.mesh_dirs": {"paths": paths}, "register": "made"}
    show = {"ansible.builtin.debug": {"msg": "CHANGED={{ made.changed_paths | to_json }}"}}
    play = {"hosts": "localhost", "gather_facts": False, "tasks": [task, show]}
    playbook.write_text(json.dumps([play]))
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i", "localhost,", "-c", "local", str(playbook), *args,
            "-e", f"ansible_python_interpreter={sys.executable}",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_mesh_dirs_makes_each_directory_with_its_mode_and_tells_what_changed(
    tmp_path: Path,
) -> None:
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True, check=True).stdout
    top, inner = tmp_path / "top", tmp_path / "top" / "inner"
    paths = [
        {"path": str(top), "owner": user, "group": group.strip(), "mode": "0750"},
        {"path": str(inner), "owner": user, "group": group.strip(), "mode": "0700"},
    ]
    rc, out = run_dirs(tmp_path, paths, "--check", "--diff")
    assert rc == 0 and "changed=1" in out and "+    state: directory" in out, out
    assert not top.exists()  # check mode touches nothing
    rc, out = run_dirs(tmp_path, paths)
    assert rc == 0 and "changed=1" in out, out
    assert stat.S_IMODE(top.stat().st_mode) == 0o750
    assert stat.S_IMODE(inner.stat().st_mode) == 0o700
    rc, out = run_dirs(tmp_path, paths)
    assert rc == 0 and "changed=0" in out and "CHANGED=[]" in out, out
    top.chmod(0o755)  # drifted: corrected, and only it is named
    rc, out = run_dirs(tmp_path, paths, "--diff")
    assert rc == 0 and "changed=1" in out and f'CHANGED=["{top}"]' in out, out
    assert "-    mode: '0755'" in out and "+    mode: '0750'" in out, out
    assert stat.S_IMODE(top.stat().st_mode) == 0o750

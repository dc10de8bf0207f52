"""mesh_common's one-step modules: mesh_release unpacks a shared virtualenv and marks the build
(once; check mode touches nothing), creates the install directories while it reads what the host
has of a release, and switches `current` atomically keeping `previous`; mesh_files makes several
directories in one run with the check-mode and --diff answers a loop of ansible.builtin.file
gives (its files: test_mesh_files.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "plugins" / "modules"


# The modules import the collection's module_utils as Ansible's loader provides them; here the
# checkout's collections/ link (to the repo itself) stands in.
sys.path.insert(0, str(REPO / "collections"))


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


def run_play(tmp_path: Path, tasks: list[dict[str, Any]], *args: str) -> tuple[int, str]:
    playbook = tmp_path / "play.yml"
    play = {"hosts": "localhost", "gather_facts": False, "tasks": tasks}
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


def run_dirs(tmp_path: Path, paths: list[dict[str, str]], *args: str) -> tuple[int, str]:
    task = {"mcp_mesh.ops.mesh_files": {"directories": paths}, "register": "made"}
    show = {"ansible.builtin.debug": {"msg": "CHANGED={{ made.changed_paths | to_json }}"}}
    return run_play(tmp_path, [task, show], *args)


def test_mesh_files_makes_each_directory_with_its_mode_and_tells_what_changed(
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


def run_release(
    tmp_path: Path, steps: list[dict[str, Any]], *args: str
) -> tuple[int, str, list[dict[str, Any]]]:
    """Run mesh_release once per step (its arguments) in one play; (rc, output, each result)."""
    results = tmp_path / "results.json"
    results.unlink(missing_ok=True)
    tasks: list[dict[str, Any]] = [
        {"mcp_mesh.ops.mesh_release": step, "register": f"step{index}"}
        for index, step in enumerate(steps)
    ]
    names = ", ".join(f"step{index}" for index in range(len(steps)))
    tasks.append(
        {
            "ansible.builtin.copy": {
                "content": f"{{{{ [{names}] | to_json }}}}",
                "dest": str(results),
            },
            "check_mode": False,
            "changed_when": False,
            "diff": False,
        }
    )
    rc, out = run_play(tmp_path, tasks, *args)
    return rc, out, json.loads(results.read_text()) if results.exists() else []


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_prepared_creates_the_install_directories_and_says_what_the_host_has(
    tmp_path: Path,
) -> None:
    install = tmp_path / "opt" / "mcp-mesh"
    release_dir = install / "releases" / "1.2.0"
    prepare = {"state": "prepared", "release_dir": str(release_dir), "build_id": "build-a"}
    # A fresh host, in check mode: the directories would be made, nothing is.
    rc, out, [checked] = run_release(tmp_path, [prepare], "--check", "--diff")
    assert rc == 0 and "changed=1" in out and "+    state: directory" in out, out
    assert not install.exists()
    assert checked["changed_paths"] == [
        str(install),
        f"{install}/releases",
        f"{install}/wheelhouse",
    ]
    facts = {key: checked[key] for key in ("build", "venv", "present", "current")}
    assert facts == {"build": "", "venv": False, "present": False, "current": ""}
    # For real: made with their modes, the same facts.
    rc, out, [made] = run_release(tmp_path, [prepare])
    assert rc == 0 and "changed=1" in out, out
    assert made["changed_paths"] == checked["changed_paths"]
    assert {key: made[key] for key in facts} == facts
    assert mode_of(install) == 0o755 and mode_of(install / "releases") == 0o755
    assert mode_of(install / "wheelhouse") == 0o700
    # The release installed and current: nothing to change, and the host says it has the build.
    release.install(release_dir, "build-a", packed_venv(tmp_path), [], check=False)
    release.switch(release_dir, check=False)
    rc, out, [again, other_build] = run_release(
        tmp_path, [prepare, {**prepare, "build_id": "build-b"}], "--check"
    )
    assert rc == 0 and "changed=0" in out, out
    assert again["changed_paths"] == [] and not again["changed"]
    assert {key: again[key] for key in facts} == {
        "build": "build-a", "venv": True, "present": True, "current": str(release_dir),
    }  # fmt: skip
    assert other_build["build"] == "build-a" and other_build["present"] is False
    # A drifted directory is corrected, and only it is named.
    (install / "wheelhouse").chmod(0o755)
    rc, out, [fixed] = run_release(tmp_path, [prepare], "--diff")
    assert rc == 0 and "changed=1" in out and "+    mode: '0700'" in out, out
    assert fixed["changed_paths"] == [f"{install}/wheelhouse"]
    assert mode_of(install / "wheelhouse") == 0o700


def test_current_switches_atomically_keeps_previous_and_changes_nothing_twice(
    tmp_path: Path,
) -> None:
    install = tmp_path / "opt" / "mcp-mesh"
    first, second = install / "releases" / "1.0.0", install / "releases" / "1.1.0"
    first.mkdir(parents=True)
    second.mkdir()
    to_first = {"state": "current", "release_dir": str(first)}
    to_second = {"state": "current", "release_dir": str(second)}
    rc, out, [checked] = run_release(tmp_path, [to_first], "--check", "--diff")
    assert rc == 0 and "changed=1" in out and f"+    src: {first}" in out, out
    assert checked["replaced"] == "" and not (install / "current").is_symlink()
    # First install: current, no previous; the same release again changes nothing; the next
    # release makes the replaced one previous.
    rc, out, [made, again, upgraded] = run_release(tmp_path, [to_first, to_first, to_second])
    assert rc == 0 and "changed=2" in out, out
    assert made["changed"] and made["replaced"] == "" and made["previous"] == ""
    assert not again["changed"] and again["replaced"] == str(first)
    assert upgraded["changed"] and upgraded["replaced"] == str(first)
    assert os.readlink(install / "current") == str(second)
    assert os.readlink(install / "previous") == str(first)
    assert upgraded["previous"] == str(first) and upgraded["current"] == str(second)
    assert sorted(path.name for path in install.iterdir()) == ["current", "previous", "releases"]
    # Check mode of a rollback: reported with both links' diff, nothing moved.
    rc, out, [back] = run_release(tmp_path, [to_first], "--check", "--diff")
    assert rc == 0 and "changed=1" in out, out
    assert f"-    src: {first}" in out and f"+    src: {second}" in out, out  # previous
    assert back["replaced"] == str(second) and back["previous"] == str(second)
    assert os.readlink(install / "current") == str(second)
    assert os.readlink(install / "previous") == str(first)


def test_a_reader_never_finds_current_missing_during_switches(tmp_path: Path) -> None:
    install = tmp_path / "opt"
    releases = [install / "releases" / version for version in ("1.0.0", "1.1.0")]
    for release_dir in releases:
        release_dir.mkdir(parents=True)
    release.switch(releases[0], check=False)
    missing: list[OSError] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                os.readlink(install / "current")
            except OSError as exc:
                missing.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for turn in range(300):
            release.switch(releases[turn % 2 - 1], check=False)  # 1.1.0, 1.0.0, 1.1.0, ...
    finally:
        done.set()
        reader.join()
    assert missing == []
    assert os.readlink(install / "current") == str(releases[0])
    assert os.readlink(install / "previous") == str(releases[1])


def test_current_refuses_a_release_that_is_not_there_or_a_current_that_is_no_link(
    tmp_path: Path,
) -> None:
    install = tmp_path / "opt"
    (install / "releases").mkdir(parents=True)
    with pytest.raises(ValueError, match="is not installed"):
        release.switch(install / "releases" / "1.0.0", check=False)
    assert release.switch(install / "releases" / "1.0.0", check=True)["changed"]
    (install / "releases" / "1.0.0").mkdir()
    (install / "current").mkdir()
    with pytest.raises(ValueError, match="is not a symlink"):
        release.switch(install / "releases" / "1.0.0", check=False)

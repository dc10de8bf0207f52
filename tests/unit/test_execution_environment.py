"""execution-environment.yml (ansible-builder v3) names what the controller needs: its Python
packages as pyproject says them, ansible-core and ansible-runner at the pins the controller
uses, the system packages, and the project's own source. `ansible-builder create` (the README's
command) renders its build context without a container engine; the context must carry all of it.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.collection import Installed
from tests.collection import build as build_collection

REPO = Path(__file__).resolve().parents[2]
EE_FILE = REPO / "execution-environment.yml"
BUILDER = Path(sys.executable).parent / "ansible-builder"
# Named in execution-environment.yml's ansible_core / ansible_runner, or installed from the
# project's source (--no-deps): never fetched through the requirements file.
NOT_IN_REQUIREMENTS = {"ansible-core", "ansible-runner", "mcp-mesh-sdk", "mcp-mesh-ops"}


def _pyproject(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _ee() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EE_FILE.read_text(encoding="utf-8"))
    return data


def requirements_of(text: str) -> set[str]:
    """A requirements file's entries, normalised (`Name[extra]>=1,<2` -> packaging's form)."""
    entries = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            entries.add(str(Requirement(line)))
    return entries


def controller_requirements() -> set[str]:
    """What the controller imports beside Ansible: mesh-ops' dependencies and the runtime's
    (mcp-mesh-sdk, installed from the source without its dependencies)."""
    mesh_ops = _pyproject(REPO / "controller" / "pyproject.toml")["project"]["dependencies"]
    runtime = _pyproject(REPO / "pyproject.toml")["project"]["dependencies"]
    return {
        str(requirement)
        for requirement in map(Requirement, [*mesh_ops, *runtime])
        if canonicalize_name(requirement.name) not in NOT_IN_REQUIREMENTS
    }


def drift(listed: set[str], expected: set[str]) -> list[str]:
    return sorted(
        [f"missing: {entry}" for entry in expected - listed]
        + [f"not a controller dependency: {entry}" for entry in listed - expected]
    )


def pin(source: list[str], name: str) -> str:
    found = [str(Requirement(entry)) for entry in source if Requirement(entry).name == name]
    assert len(found) == 1, f"{name} in {source}"
    return found[0]


def test_the_requirements_file_is_the_controllers_dependencies() -> None:
    path = REPO / _ee()["dependencies"]["python"]
    assert drift(requirements_of(path.read_text(encoding="utf-8")), controller_requirements()) == []


def test_drift_is_reported_both_ways() -> None:
    expected = {"fabric<4,>=3.2", "pyrage<2,>=1.4"}
    assert drift({"fabric<4,>=3.2", "requests"}, expected) == [
        "missing: pyrage<2,>=1.4",
        "not a controller dependency: requests",
    ]
    assert drift(requirements_of("fabric>=3.2,<4  # ssh\npyrage>=1.4,<2\n"), expected) == []


def test_ansible_core_and_runner_are_pinned_as_the_controller_pins_them() -> None:
    dependencies = _ee()["dependencies"]
    mesh_ops = _pyproject(REPO / "controller" / "pyproject.toml")["project"]["dependencies"]
    dev = _pyproject(REPO / "pyproject.toml")["project"]["optional-dependencies"]["dev"]
    assert str(Requirement(dependencies["ansible_core"]["package_pip"])) == pin(
        mesh_ops, "ansible-core"
    )
    assert str(Requirement(dependencies["ansible_runner"]["package_pip"])) == pin(
        dev, "ansible-runner"
    )


def test_ansible_builder_create_renders_a_context_with_every_requirement(tmp_path: Path) -> None:
    build_collection(REPO / "build" / "collection")  # `make collection`, as the file's header says
    context = tmp_path / "context"
    created = subprocess.run(
        [str(BUILDER), "create", "-f", "execution-environment.yml", "-c", str(context)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    build = context / "_build"
    rendered = requirements_of((build / "requirements.txt").read_text(encoding="utf-8"))
    assert drift(rendered, controller_requirements()) == []
    bindep = (build / "bindep.txt").read_text(encoding="utf-8")
    for package in ("openssh-client", "dpkg-dev", "apt"):
        assert any(line.split()[:1] == [package] for line in bindep.splitlines()), package
    containerfile = (context / "Containerfile").read_text(encoding="utf-8")
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core>=2.19,<2.20 ansible-runner>=2.4,<3"' in (
        containerfile
    )
    assert "python:3.11-slim-bookworm" in containerfile  # the hosts' Debian and Python
    assert "--user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile
    # The project's own packages, from its source, installed into the final image.
    assert "COPY _build/mesh /tmp/mesh-src" in containerfile
    assert "pip install --no-cache-dir --no-deps /tmp/mesh-src /tmp/mesh-src/controller" in (
        containerfile
    )
    source = build / "mesh"
    assert _pyproject(source / "pyproject.toml")["project"]["name"] == "mcp-mesh-sdk"
    assert _pyproject(source / "controller" / "pyproject.toml")["project"]["name"] == (
        "mcp-mesh-ops"
    )
    assert (source / "runtime" / "mcp_mesh_sdk" / "__init__.py").is_file()
    assert (source / "README.md").is_file()  # the runtime's metadata reads it

    # The collection, installed in the galaxy stage (/build is _build) as the image build does.
    galaxy = yaml.safe_load((build / "requirements.yml").read_text(encoding="utf-8"))
    (collection,) = galaxy["collections"]
    version = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))["version"]
    assert collection == {"name": f"collection/mcp_mesh-ops-{version}.tar.gz", "type": "file"}
    assert "COPY _build /build" in containerfile
    # (A collections path of its own: one in ~/.ansible holding mcp_mesh.ops would make
    # ansible-galaxy install nothing, as the image's empty paths never do.)
    image = Installed.prepare(tmp_path / "image")
    installed = image.run(
        "ansible-galaxy",
        "collection",
        "install",
        "-r",
        "requirements.yml",
        "-p",
        str(image.collections),
        check=False,
        cwd=build,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (image.root / "playbooks" / "site.yml").is_file()
    assert (image.root / "runtime" / "mcp_mesh_sdk" / "__init__.py").is_file()

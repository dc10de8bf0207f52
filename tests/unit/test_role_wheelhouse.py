"""The controller-side wheelhouse module of mesh_common: version, build id, cache hit."""

from __future__ import annotations

import importlib.util
import shutil
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE_PATH = REPO / "plugins" / "modules" / "mesh_wheelhouse.py"


@pytest.fixture(scope="module")
def wheelhouse() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mesh_wheelhouse", MODULE_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def source(tmp_path: Path) -> Path:
    tree = tmp_path / "source"
    (tree / "runtime" / "mcp_mesh_sdk").mkdir(parents=True)
    (tree / "pyproject.toml").write_text("[project]\nname = 'mcp-mesh-sdk'\n")
    (tree / "runtime" / "mcp_mesh_sdk" / "__init__.py").write_text('__version__ = "2.0.1"\n')
    (tree / "runtime" / "mcp_mesh_sdk" / "agent.py").write_text("X = 1\n")
    return tree


def test_version_is_read_from_the_source(wheelhouse: ModuleType, source: Path) -> None:
    assert wheelhouse.read_version(source) == "2.0.1"


def test_a_source_without_a_version_is_refused(wheelhouse: ModuleType, source: Path) -> None:
    (source / "runtime" / "mcp_mesh_sdk" / "__init__.py").write_text("VERSION = 2\n")
    with pytest.raises(ValueError, match="no __version__"):
        wheelhouse.read_version(source)


def test_build_id_follows_the_source_not_its_caches(wheelhouse: ModuleType, source: Path) -> None:
    first = wheelhouse.build_id(source, "2.0.1")
    cache = source / "runtime" / "mcp_mesh_sdk" / "__pycache__"
    cache.mkdir()
    (cache / "agent.cpython-311.pyc").write_bytes(b"\0compiled")
    (source / "runtime" / "mcp_mesh_sdk.egg-info").mkdir()
    (source / "runtime" / "mcp_mesh_sdk.egg-info" / "PKG-INFO").write_text("x")
    assert wheelhouse.build_id(source, "2.0.1") == first
    (source / "runtime" / "mcp_mesh_sdk" / "agent.py").write_text("X = 2\n")
    assert wheelhouse.build_id(source, "2.0.1") != first


def test_build_id_differs_for_another_version_of_the_same_tree(
    wheelhouse: ModuleType, source: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    assert wheelhouse.build_id(source, "2.0.1") == wheelhouse.build_id(copy, "2.0.1")
    assert wheelhouse.build_id(source, "2.0.1") != wheelhouse.build_id(source, "2.0.2")


def test_a_cached_build_needs_both_archive_and_marker(
    wheelhouse: ModuleType, tmp_path: Path
) -> None:
    release = tmp_path / "2.0.1"
    release.mkdir()
    (release / "BUILD_ID").write_text("abc\n")
    assert wheelhouse.cached_build(release) is None
    with tarfile.open(release / "wheelhouse.tar", "w"):
        pass
    assert wheelhouse.cached_build(release) == "abc"


def test_a_target_names_python_machine_and_glibc(wheelhouse: ModuleType) -> None:
    target = wheelhouse.Interpreter.parse("3.13 x86_64 2.41")
    assert (target.python, target.machine, target.glibc) == ("3.13", "x86_64", "2.41")
    assert target.tag == "py3.13-x86_64"


@pytest.mark.parametrize("text", ["3.13 x86_64", "python3 x86_64 2.41", "3.13 x86_64 glibc"])
def test_a_malformed_target_is_refused(wheelhouse: ModuleType, text: str) -> None:
    with pytest.raises(ValueError, match="target"):
        wheelhouse.Interpreter.parse(text)


def test_platforms_stop_at_the_hosts_glibc(wheelhouse: ModuleType) -> None:
    tags = wheelhouse.manylinux_platforms("x86_64", "2.36")
    assert "manylinux_2_36_x86_64" in tags
    assert "manylinux_2_37_x86_64" not in tags  # a wheel needing a newer glibc would not load
    assert {"manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64"} <= set(tags)


def test_the_controllers_interpreter_keeps_the_wheelhouse_where_it_was(
    wheelhouse: ModuleType, tmp_path: Path
) -> None:
    assert wheelhouse.release_dir(tmp_path, "2.0.1", None) == tmp_path / "2.0.1"
    assert wheelhouse.release_dir(tmp_path, "2.0.1", "py3.13-x86_64") == (
        tmp_path / "2.0.1-py3.13-x86_64"
    )


def test_another_interpreter_downloads_binary_wheels_pinned_to_the_controllers(
    wheelhouse: ModuleType, tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in (
        "pydantic_core-2.50.5-cp311-cp311-manylinux_2_17_x86_64.whl",
        "anyio-4.16.0-py3-none-any.whl",
    ):
        (wheels / name).write_bytes(b"")
    assert wheelhouse.wheel_pins(wheels) == ["anyio==4.16.0", "pydantic_core==2.50.5"]
    target = wheelhouse.Interpreter.parse("3.13 x86_64 2.41")
    runtime = tmp_path / "mcp_mesh_sdk-2.0.1-py3-none-any.whl"
    command = wheelhouse.download_command("python3", target, wheels, runtime, tmp_path / "c.txt")
    assert command[:3] == ["python3", "-m", "pip"] and "download" in command
    assert "--only-binary=:all:" in command  # nothing compiled on the controller for 3.13
    assert command[command.index("--python-version") + 1] == "3.13"
    assert command[command.index("--constraint") + 1] == str(tmp_path / "c.txt")
    assert command[-1] == str(runtime)

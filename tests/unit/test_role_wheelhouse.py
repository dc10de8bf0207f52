"""The controller-side wheelhouse module of mesh_common: version, build id, cache hit."""

from __future__ import annotations

import importlib.util
import shutil
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE_PATH = REPO / "roles" / "mesh_common" / "library" / "mesh_wheelhouse.py"


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

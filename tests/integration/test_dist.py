"""`make dist`, the seed's build: `python -m build`, then `twine check`; the wheel holds the
runtime only and installs offline from the release's wheelhouse (the one the roles deploy)."""

from __future__ import annotations

import email.parser
import os
import subprocess
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import mcp_mesh_sdk
from mesh_ops.image import ensure_wheelhouse

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dist() -> Path:
    done = subprocess.run(
        ["make", "-s", "dist"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    checked = [line for line in done.stdout.splitlines() if line.startswith("Checking ")]
    assert len(checked) == 2, done.stdout[-2000:]  # the wheel and the sdist
    assert all("PASSED" in line for line in checked), done.stdout[-2000:]
    return REPO / "dist"


def wheel_of(dist: Path) -> Path:
    wheels = sorted(dist.glob("mcp_mesh_sdk-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_holds_the_runtime_only_and_names_the_project(dist: Path) -> None:
    version = mcp_mesh_sdk.__version__
    with zipfile.ZipFile(wheel_of(dist)) as wheel:
        names = wheel.namelist()
        metadata = email.parser.Parser().parsestr(
            wheel.read(f"mcp_mesh_sdk-{version}.dist-info/METADATA").decode()
        )
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"mcp_mesh_sdk", f"mcp_mesh_sdk-{version}.dist-info"}
    assert "mcp_mesh_sdk/cli.py" in names
    assert not [name for name in names if "mesh_ops" in name]
    assert metadata["Name"] == "mcp-mesh-sdk"
    assert metadata["Version"] == version
    assert metadata["Summary"]


def test_the_sdist_carries_no_controller_code(dist: Path) -> None:
    (sdist,) = sorted(dist.glob("mcp_mesh_sdk-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    assert any(name.endswith("/runtime/mcp_mesh_sdk/cli.py") for name in names)
    assert not [name for name in names if "/controller/" in name or "mesh_ops" in name]


def test_the_wheel_installs_offline_from_the_wheelhouse(dist: Path, tmp_path: Path) -> None:
    wheelhouse = ensure_wheelhouse()  # the roles' cache: built once per source, then reused
    assert wheelhouse.version == mcp_mesh_sdk.__version__
    with tarfile.open(wheelhouse.archive) as archive:
        archive.extractall(tmp_path / "house", filter="data")
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    # No index and no pip configuration of this machine: the wheelhouse is all there is.
    offline = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1"}
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-index", "--find-links", str(tmp_path / "house" / "wheels"), str(wheel_of(dist))],
        capture_output=True, text=True, env=offline, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    cli = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "mcp-mesh-sdk"), "--version"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.stdout.strip() == f"mcp-mesh-sdk {mcp_mesh_sdk.__version__}", cli.stderr
    imports = subprocess.run(
        [str(python), "-c", "import mcp.server, uvicorn, mcp_mesh_sdk.agent.app; import mesh_ops"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert "No module named 'mesh_ops'" in imports.stderr, imports.stderr[-2000:]

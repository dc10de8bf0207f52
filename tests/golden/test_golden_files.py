"""Every unit, env file and HAProxy config the roles write, rendered for a sample inventory and
compared byte for byte with the copies in expected/.

A refactoring must not change a file on the hosts. A commit that means to change one updates
expected/ with `MESH_GOLDEN_UPDATE=1 pytest tests/golden` and shows the change in its diff.
Two sample fleets: inventory.yml (one registry on SQLite) into expected/, and
replicas/inventory.yml (two registry replicas on PostgreSQL behind the load balancer) into
replicas/expected/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EXPECTED = HERE / "expected"
REPLICAS = HERE / "replicas"
FLEETS = {
    "single": (HERE / "inventory.yml", EXPECTED),
    "replicas": (REPLICAS / "inventory.yml", REPLICAS / "expected"),
}
# The replicas fleet's database password (a placeholder), percent-encoded as the URL holds it.
PLACEHOLDER_PASSWORD = "golden-db-placeholder/with:at@and%"
ENCODED_PASSWORD = "golden-db-placeholder%2Fwith%3Aat%40and%25"


def render(into: Path, inventory: Path = HERE / "inventory.yml") -> dict[str, str]:
    """{"<host>/<file>": content} as the roles render them for `inventory`."""
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i", str(inventory), str(HERE / "render.yml"),
            "-e", f"golden_out={into}", "-e", f"ansible_python_interpreter={sys.executable}",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return files_under(into)


def files_under(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): path.read_text()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, str]]]:
    """Each fleet rendered once for the module: {fleet: (folder, files)}."""
    done = {}
    for fleet, (inventory, _) in FLEETS.items():
        folder = tmp_path_factory.mktemp(f"rendered-{fleet}")
        done[fleet] = (folder, render(folder, inventory))
    return done


@pytest.mark.parametrize("fleet", sorted(FLEETS))
def test_rendered_host_files_match_the_stored_copies(
    renders: dict[str, tuple[Path, dict[str, str]]], fleet: str
) -> None:
    stored = FLEETS[fleet][1]
    folder, rendered = renders[fleet]
    if os.environ.get("MESH_GOLDEN_UPDATE") == "1":
        shutil.rmtree(stored, ignore_errors=True)
        shutil.copytree(folder, stored)
        pytest.skip(f"{stored.relative_to(HERE)} rewritten from this render: review the diff")
    expected = files_under(stored)
    assert sorted(rendered) == sorted(expected), "a file was added or removed"
    for name, content in expected.items():
        assert rendered[name] == content, f"{name} changed"


def test_the_database_password_is_in_the_replicas_registry_env_only(
    renders: dict[str, tuple[Path, dict[str, str]]],
) -> None:
    files = renders["replicas"][1]
    holding = sorted(name for name, content in files.items() if ENCODED_PASSWORD in content)
    assert holding == ["db1/registry.env", "lb1/registry.env"]
    assert not [name for name, content in files.items() if PLACEHOLDER_PASSWORD in content]
    url = (
        f"postgresql://mesh_registry:{ENCODED_PASSWORD}@192.0.2.30:5432/mesh_registry"
        "?sslmode=verify-full&sslrootcert=/etc/mcp-mesh/tls/ca.pem"
    )
    for name in holding:
        assert f'MCP_MESH_REGISTRY_DATABASE_URL="{url}"' in files[name].splitlines()


def test_agents_reach_replicas_through_the_load_balancer_and_a_single_registry_directly(
    renders: dict[str, tuple[Path, dict[str, str]]],
) -> None:
    replicas, single = renders["replicas"][1], renders["single"][1]
    assert 'MESH_REGISTRY_URL="https://192.0.2.10:8001"' in replicas["agent1/agent.env"]
    assert 'MESH_REGISTRY_URL="http://192.0.2.10:8000"' in single["agent1/agent.env"]
    assert "frontend mcp_mesh_registry" in replicas["lb1/haproxy.cfg"]
    assert "frontend mcp_mesh_registry" in replicas["lb2/haproxy.cfg"]
    for name, content in single.items():
        assert "mcp_mesh_registry" not in content, name
        assert "DATABASE_URL" not in content or name == "agent2/agent.env", name

"""Every unit, env file and HAProxy config the roles write, rendered for a sample inventory and
compared byte for byte with the copies in expected/.

A refactoring must not change a file on the hosts. A commit that means to change one updates
expected/ with `MESH_GOLDEN_UPDATE=1 pytest tests/golden` and shows the change in its diff.
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


def render(into: Path) -> dict[str, str]:
    """{"<host>/<file>": content} as the roles render them for inventory.yml."""
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i", str(HERE / "inventory.yml"), str(HERE / "render.yml"),
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


def test_rendered_host_files_match_the_stored_copies(tmp_path: Path) -> None:
    rendered = render(tmp_path / "rendered")
    if os.environ.get("MESH_GOLDEN_UPDATE") == "1":
        shutil.rmtree(EXPECTED, ignore_errors=True)
        shutil.copytree(tmp_path / "rendered", EXPECTED)
        pytest.skip("expected/ rewritten from this render: review and commit the diff")
    expected = files_under(EXPECTED)
    assert sorted(rendered) == sorted(expected), "a file was added or removed"
    for name, content in expected.items():
        assert rendered[name] == content, f"{name} changed"

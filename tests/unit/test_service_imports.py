"""A plain-HTTP agent or registry keeps the archive and certificate code out of its memory: the
cryptography package alone is about 15 MB of resident memory (bench/results/agent.json's rss_mb
grew by 12 MB when the backup metric first brought it in)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("cryptography", "pyrage", "isal")


@pytest.mark.parametrize("module", ["mcp_mesh_sdk.agent.app", "mcp_mesh_sdk.registry.app"])
def test_the_service_imports_no_archive_or_certificate_library(module: str) -> None:
    probe = f"import sys, {module}; print(*sorted({{m.split('.')[0] for m in sys.modules}}))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert "mcp_mesh_sdk" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))

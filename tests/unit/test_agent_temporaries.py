"""Reaping the temporary files interrupted writes left: only the agent's own, only old ones."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mcp_mesh_sdk.agent.paths import PathGuard
from mcp_mesh_sdk.agent.temporaries import is_temporary_name, reap_temporaries, temporary_name
from mcp_mesh_sdk.agent.tools import FileTools

LEFTOVER = ".mcp-mesh-0123456789abcdef0123456789abcdef.tmp"
# Clients' names that look like one but are not the agent's temporary pattern.
LOOKALIKES = [
    ".mcp-mesh-notes.tmp",
    "mcp-mesh-0123456789abcdef0123456789abcdef.tmp",
    ".mcp-mesh-0123456789abcdef0123456789abcdef.tmp.txt",
    "x.mcp-mesh-0123456789abcdef0123456789abcdef.tmp",
    ".mcp-mesh-0123456789ABCDEF0123456789ABCDEF.tmp",
]


def aged(path: Path, seconds: float = 3600) -> Path:
    if not path.exists():
        path.write_text("left behind")
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)
    return path


def test_the_writes_own_names_are_recognised_and_no_other() -> None:
    assert is_temporary_name(temporary_name())
    assert is_temporary_name(LEFTOVER)
    assert not any(is_temporary_name(name) for name in LOOKALIKES)


def test_leftovers_are_removed_and_everything_else_is_kept(tmp_path: Path) -> None:
    base = tmp_path / "data"
    (base / "docs" / "deep").mkdir(parents=True)
    smoke = base / ".mcp-mesh-smoke-0123abcd"
    smoke.mkdir()
    leftovers = [aged(base / LEFTOVER), aged(base / "docs" / "deep" / LEFTOVER)]
    kept = [aged(base / "docs" / name) for name in LOOKALIKES]
    (base / "docs" / "report.txt").write_text("a client's file")
    kept.append(base / "docs" / "report.txt")
    kept.append(aged(smoke / LEFTOVER))  # a smoke folder is the smoke's to clean
    fresh = base / ".mcp-mesh-ffffffffffffffffffffffffffffffff.tmp"  # a write of this run
    fresh.write_text("being written")
    kept.append(fresh)
    outside = tmp_path / "outside"
    outside.mkdir()
    kept.append(aged(outside / LEFTOVER))
    (base / "link").symlink_to(outside, target_is_directory=True)  # never followed
    (base / "folder-named.tmp").mkdir()
    named_like_a_folder = base / ".mcp-mesh-abababababababababababababababab.tmp"
    named_like_a_folder.mkdir()  # not a regular file
    kept.append(named_like_a_folder)

    reaped = reap_temporaries(base, written_before=time.time() - 60)

    assert reaped.removed == 2 and reaped.complete
    assert not any(path.exists() for path in leftovers)
    assert all(path.exists() for path in kept), [p for p in kept if not p.exists()]


def test_the_walk_is_bounded_and_says_so(tmp_path: Path) -> None:
    for index in range(20):
        (tmp_path / f"folder{index}").mkdir()
    aged(tmp_path / LEFTOVER)
    reaped = reap_temporaries(tmp_path, written_before=time.time(), max_entries=5)
    assert not reaped.complete


def test_a_write_cut_short_leaves_a_temporary_that_the_next_start_removes(tmp_path: Path) -> None:
    base = tmp_path / "data"
    base.mkdir()
    tools = FileTools(PathGuard(base, {".txt"}, max_file_size=100))
    tools.write_file("kept.txt", "old")
    # What a kill between the temporary's creation and its rename leaves behind:
    left = base / temporary_name()
    left.write_text("half")
    aged(left)
    assert tools.list_directory()["entries"] == [{"name": "kept.txt", "type": "file", "size": 3}]

    reaped = reap_temporaries(base, written_before=time.time())

    assert reaped.removed == 1
    assert sorted(p.name for p in base.iterdir()) == ["kept.txt"]
    assert tools.read_file("kept.txt") == "old"

"""A local process swapping a folder for a symlink while the file tools run cannot lead them out.

A thread keeps replacing `base/shared` (a real folder) by a symlink to a folder outside the base
directory and back, while writes (which make folders) and reads, listings and stats go into
that path. Nothing may be created outside, and nothing from outside may be read or shown.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_mesh_sdk.agent.paths import PathGuard, ToolCallError
from mcp_mesh_sdk.agent.tools import FileTools

ROUNDS = 400
TIME_LIMIT = 30.0
SECRET = "outside, not for clients"


# The attacker: another process (as the measured attack), so it runs truly beside the tools.
# It exchanges the folder and the symlink atomically (renameat2 RENAME_EXCHANGE), so the path
# is never missing: a tool never makes a folder of its own there, which would stop the swapping.
SWAPPER = """
import ctypes, os, sys
folder, link = (os.fsencode(p) for p in sys.argv[1:3])
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
print("swapping", flush=True)
while True:
    if libc.renameat2(AT_FDCWD, folder, AT_FDCWD, link, RENAME_EXCHANGE) != 0:
        sys.exit(f"renameat2: {os.strerror(ctypes.get_errno())}")
"""


@contextlib.contextmanager
def swapping(folder: Path, outside: Path) -> Iterator[None]:
    """Swap `folder` for a symlink to `outside` and back, from another process, until the
    block ends."""
    link = folder.with_name(folder.name + ".link")
    link.symlink_to(outside, target_is_directory=True)
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(folder), str(link)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert swapper.stdout is not None and swapper.stdout.readline() == "swapping\n"
        yield
        assert swapper.poll() is None, "the swapper stopped"
    finally:
        swapper.kill()
        swapper.wait(5)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text(SECRET)
    return folder


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_swapping_a_folder_for_a_symlink_never_leads_a_tool_outside(
    tmp_path: Path, outside: Path
) -> None:
    base = tmp_path / "data"
    (base / "shared").mkdir(parents=True)
    tools = FileTools(PathGuard(base, {".txt"}, max_file_size=1000))
    written = refused = 0
    started = time.monotonic()
    with swapping(base / "shared", outside):
        # At least ROUNDS rounds, and on until both sides of the race were met: on a busy
        # machine the swapper can go unscheduled for hundreds of rounds.
        for round_ in itertools.count():
            if time.monotonic() - started > TIME_LIMIT:
                break
            if round_ >= ROUNDS and written > 0 and refused > 0:
                break
            calls = [
                (tools.write_file, (f"shared/made{round_}/deeper/f.txt", "x")),
                (tools.write_file, (f"shared/f{round_}.txt", "x")),
                (tools.write_file, ("shared/secret.txt", "overwritten")),
                (tools.read_file, ("shared/secret.txt",)),
                (tools.list_directory, ("shared",)),
                (tools.file_info, ("shared/secret.txt",)),
            ]
            for action, args in calls:
                try:
                    answer = action(*args)
                except ToolCallError:
                    refused += 1
                    continue
                if action == tools.write_file:
                    written += 1
                assert SECRET not in str(answer), (action.__name__, args)
    # Within the time limit, however busy the machine, both sides of the race were met.
    assert written > 0 and refused > 0, (round_, written, refused)
    assert everything_under(outside) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == SECRET


def test_a_folder_swapped_after_the_walk_keeps_the_write_inside(
    tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exact window the measured attack used: the folder is swapped for a symlink after
    the path was checked and before the file is created in it."""
    base = tmp_path / "data"
    (base / "shared").mkdir(parents=True)
    tools = FileTools(PathGuard(base, {".txt"}, max_file_size=1000))
    real_open = os.open

    def swap_then_open(path, flags, *args, **kwargs):
        if str(path).endswith(".tmp") and not (base / "shared").is_symlink():
            (base / "shared").rename(base / "parked")
            (base / "shared").symlink_to(outside, target_is_directory=True)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", swap_then_open)
    answer = tools.write_file("shared/new.txt", "inside")
    assert answer["path"] == "shared/new.txt"  # the name it was asked for, inside the base
    assert (base / "parked" / "new.txt").read_text() == "inside"
    assert everything_under(outside) == ["secret.txt"]

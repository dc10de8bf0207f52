"""The temporary files of `write_file`: their names, and reaping those an interrupted write left.

A write goes to `.mcp-mesh-<32 hex>.tmp` beside its target and is renamed over it; a write cut
short by a crash or a kill leaves that file behind. At start the agent removes them: only names
of exactly that pattern, only regular files last written before the agent started (a write of
this agent is never one of them), never inside another `.mcp-mesh-*` folder (a smoke test's),
never through a symlink. The walk is bounded in entries, depth and time; what it does not reach
waits for the next start.
"""

from __future__ import annotations

import os
import re
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from mcp_mesh_sdk.agent.paths import AGENT_OWN_PREFIX

_NAME = re.compile(re.escape(AGENT_OWN_PREFIX) + r"[0-9a-f]{32}\.tmp")
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_ENTRIES = 200_000
MAX_DEPTH = 32
MAX_SECONDS = 5.0


def temporary_name() -> str:
    """A fresh name for a write's temporary file."""
    return f"{AGENT_OWN_PREFIX}{uuid.uuid4().hex}.tmp"


def is_temporary_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


@dataclass
class Reaped:
    removed: int = 0
    complete: bool = True  # False: a bound stopped the walk


class _Bounded(Exception):
    """The walk reached MAX_ENTRIES or MAX_SECONDS."""


def reap_temporaries(
    base: Path,
    written_before: float,
    *,
    max_entries: int = MAX_ENTRIES,
    max_seconds: float = MAX_SECONDS,
) -> Reaped:
    """Remove the write temporaries under `base` last modified before `written_before` (a
    time.time() value). OSError if `base` cannot be opened; other errors skip a folder."""
    reaper = _Reaper(written_before, max_entries, time.monotonic() + max_seconds)
    folder = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        reaper.folder(folder, depth=0)
    except _Bounded:
        reaper.reaped.complete = False
    finally:
        os.close(folder)
    return reaper.reaped


class _Reaper:
    def __init__(self, written_before: float, max_entries: int, deadline: float) -> None:
        self.written_before = written_before
        self.entries_left = max_entries
        self.deadline = deadline
        self.reaped = Reaped()

    def folder(self, folder: int, depth: int) -> None:
        subfolders = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    self._count()
                    if entry.name.startswith(AGENT_OWN_PREFIX):  # the agent's own: no deeper
                        if is_temporary_name(entry.name):
                            self._remove_if_stale(folder, entry)
                    elif entry.is_dir(follow_symlinks=False):
                        subfolders.append(entry.name)
        except OSError:
            return
        if subfolders and depth >= MAX_DEPTH:
            self.reaped.complete = False
            return
        for name in subfolders:
            try:
                child = os.open(name, _FOLDER_FLAGS, dir_fd=folder)
            except OSError:  # gone, or swapped for a link
                continue
            try:
                self.folder(child, depth + 1)
            finally:
                os.close(child)

    def _remove_if_stale(self, folder: int, entry: os.DirEntry[str]) -> None:
        try:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and info.st_mtime < self.written_before:
                os.unlink(entry.name, dir_fd=folder)
                self.reaped.removed += 1
        except OSError:
            pass

    def _count(self) -> None:
        self.entries_left -= 1
        if self.entries_left < 0 or time.monotonic() > self.deadline:
            raise _Bounded

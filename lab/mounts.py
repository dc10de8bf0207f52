"""Mount points under a directory, read from /proc/mounts, and safe removal of such trees."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from lab.errors import LabError

PROC_MOUNTS = Path("/proc/mounts")


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def parse_mount_points(text: str) -> list[str]:
    return [_unescape(line.split()[1]) for line in text.splitlines() if len(line.split()) > 2]


def mounts_under(directory: Path, table: str | None = None) -> list[Path]:
    """Mount points at or below `directory`, deepest first (the order to unmount them in)."""
    text = PROC_MOUNTS.read_text() if table is None else table
    top = str(directory).rstrip("/")
    found = {
        Path(point)
        for point in parse_mount_points(text)
        if point == top or point.startswith(top + "/")
    }
    return sorted(found, key=lambda path: len(path.parts), reverse=True)


def unmount_all(directory: Path) -> None:
    """Unmount everything at or below `directory`; a busy mount is detached lazily."""
    for _ in range(3):  # stacked mounts on one point need one pass each
        points = mounts_under(directory)
        if not points:
            return
        for point in points:
            done = subprocess.run(["umount", str(point)], capture_output=True, text=True)
            if done.returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True, text=True)
    left = mounts_under(directory)
    if left:
        raise LabError(f"cannot unmount {', '.join(map(str, left))}")


def remove_tree(directory: Path) -> None:
    """Delete a lab-owned tree, but never while something is still mounted inside it."""
    if not directory.exists():
        return
    unmount_all(directory)
    shutil.rmtree(directory)


def overlay_lower_dirs(table: str | None = None) -> set[Path]:
    """Every directory some overlay mount uses as a lower layer (such a base is in use)."""
    text = PROC_MOUNTS.read_text() if table is None else table
    found: set[Path] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] != "overlay":
            continue
        for option in fields[3].split(","):
            if option.startswith("lowerdir="):
                found.update(Path(_unescape(part)) for part in option[9:].split(":") if part)
    return found

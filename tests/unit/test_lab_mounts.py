"""Reading /proc/mounts: what is mounted under the lab, which bases are in use."""

import subprocess
from pathlib import Path

import pytest

from lab.cgroups import systemd_hierarchies
from lab.errors import LabError
from lab.mounts import mounts_under, overlay_lower_dirs, remove_tree

TABLE = """\
/dev/vda / ext4 rw,relatime 0 0
overlay /var/lib/mcp-mesh-lab/mesh/hosts/lb1/root overlay rw,lowerdir=/c/base-1,upperdir=/u 0 0
proc /var/lib/mcp-mesh-lab/mesh/hosts/lb1/root/proc proc rw 0 0
overlay /var/lib/mcp-mesh-lab/mesh2/hosts/lb1/root overlay rw,lowerdir=/a:/b,upperdir=/u 0 0
tmpfs /var/lib/mcp-mesh-lab/mesh/with\\040space tmpfs rw 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0
"""


def test_mounts_under_a_lab_deepest_first_and_not_the_neighbour_lab() -> None:
    found = mounts_under(Path("/var/lib/mcp-mesh-lab/mesh"), TABLE)
    assert found[0] == Path("/var/lib/mcp-mesh-lab/mesh/hosts/lb1/root/proc")
    assert set(found) == {
        Path("/var/lib/mcp-mesh-lab/mesh/hosts/lb1/root/proc"),
        Path("/var/lib/mcp-mesh-lab/mesh/hosts/lb1/root"),
        Path("/var/lib/mcp-mesh-lab/mesh/with space"),
    }


def test_overlay_lower_dirs_are_the_bases_in_use() -> None:
    assert overlay_lower_dirs(TABLE) == {Path("/c/base-1"), Path("/a"), Path("/b")}


def test_systemd_hierarchies_are_cgroup2_and_the_named_v1_one() -> None:
    assert systemd_hierarchies(TABLE) == [
        Path("/sys/fs/cgroup/systemd"),
        Path("/sys/fs/cgroup/unified"),
    ]


def test_remove_tree_refuses_while_something_stays_mounted(tmp_path, monkeypatch) -> None:
    (tmp_path / "root").mkdir()
    table = f"tmpfs {tmp_path}/root tmpfs rw 0 0\n"
    monkeypatch.setattr("lab.mounts.PROC_MOUNTS", tmp_path / "mounts")
    (tmp_path / "mounts").write_text(table)
    failed = subprocess.CompletedProcess(["umount"], 32, "", "target is busy")
    monkeypatch.setattr("lab.mounts.subprocess.run", lambda *a, **k: failed)
    with pytest.raises(LabError, match="cannot unmount"):
        remove_tree(tmp_path)
    assert (tmp_path / "root").is_dir()

import io
import subprocess
import tarfile

from mcp_mesh_sdk.backup.tarread import TarReader
from mcp_mesh_sdk.backup.tarstream import TarStream, header


def info(name, kind=tarfile.REGTYPE, size=0, link="", uid=1000, mode=0o640):
    item = tarfile.TarInfo(name)
    item.type, item.size, item.linkname, item.uid, item.gid = kind, size, link, uid, uid
    item.mode, item.mtime, item.uname, item.gname = mode, 1_700_000_000, "mesh", "mesh"
    return item


CASES = [
    (info("data/plain.txt", size=5), b"hello"),
    (info("data/" + "long-name-" * 20 + ".json", size=2), b"{}"),
    (info("data/ünïcødé €.txt", size=3), b"abc"),
    (info("data/dir", tarfile.DIRTYPE, mode=0o750), None),
    (info("data/link", tarfile.SYMTYPE, link="../" * 40 + "target"), None),
    (info("data/big-ids", size=1, uid=4_294_967_294), b"x"),
]


def build() -> bytes:
    out = io.BytesIO()
    stream = TarStream(out)
    for item, data in CASES:
        out.write(header(item))
        if data:
            out.write(data + bytes(-len(data) % 512))
    stream.close()
    return out.getvalue()


def test_headers_read_back_with_tarfile_gnu_tar_and_our_reader() -> None:
    blob = build()
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [i.name for i, _ in CASES]
        for member, (item, data) in zip(members, CASES, strict=True):
            assert (member.type, member.mode, member.uid, member.linkname) == (
                item.type, item.mode, item.uid, item.linkname,
            )  # fmt: skip
            if data:
                assert tar.extractfile(member).read() == data
    listing = subprocess.run(["tar", "tvf", "-"], input=blob, capture_output=True, check=True)
    assert b"long-name-long-name" in listing.stdout
    reader = TarReader(io.BytesIO(blob))
    names = []
    while (member := reader.next()) is not None:
        names.append(member.name)
    assert names == [i.name for i, _ in CASES]

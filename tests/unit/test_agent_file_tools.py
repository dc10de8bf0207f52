"""The file tools and their confinement: traversal, symlink escape, extension, size."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from mcp_mesh_sdk.agent.paths import (
    ClientError,
    OperationFailed,
    Outcome,
    PathGuard,
    Refusal,
    ServerError,
    ToolCallError,
    is_suspicious,
)
from mcp_mesh_sdk.agent.security import SecurityEventType
from mcp_mesh_sdk.agent.tools import FileTools

TRAVERSAL = SecurityEventType.PATH_TRAVERSAL_ATTEMPT


@pytest.fixture
def base(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    return data


@pytest.fixture
def tools(base: Path) -> FileTools:
    return FileTools(PathGuard(base, {".txt", ".json", ".tar.gz"}, max_file_size=100))


def refusal(action, *args) -> Refusal:
    with pytest.raises(Refusal) as caught:
        action(*args)
    return caught.value


@pytest.mark.parametrize("path", ["../secret.txt", "a/../../secret.txt", "a/..", ".."])
def test_dot_dot_is_a_traversal_attempt(tools: FileTools, path: str) -> None:
    refused = refusal(tools.read_file, path)
    assert refused.event is TRAVERSAL
    assert "path traversal" in str(refused)


def test_absolute_path_outside_is_refused_inside_is_allowed(tools: FileTools, base: Path) -> None:
    assert refusal(tools.read_file, "/etc/hostname.txt").event is TRAVERSAL
    (base / "in.txt").write_text("inside")
    assert tools.read_file(str(base / "in.txt")) == "inside"


def test_symlink_leading_out_is_refused(tools: FileTools, base: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    (base / "link.txt").symlink_to(outside)
    (base / "dirlink").symlink_to(tmp_path)
    for action, args in [
        (tools.read_file, ("link.txt",)),
        (tools.write_file, ("link.txt", "overwrite")),
        (tools.read_file, ("dirlink/outside.txt",)),
        (tools.list_directory, ("dirlink",)),
        (tools.file_info, ("dirlink/outside.txt",)),
    ]:
        refused = refusal(action, *args)
        assert refused.event is TRAVERSAL, args
        assert "symlink" in str(refused)
    assert outside.read_text() == "not yours"


def test_symlink_staying_inside_is_followed(tools: FileTools, base: Path) -> None:
    (base / "real.txt").write_text("same file")
    (base / "alias.txt").symlink_to(base / "real.txt")
    assert tools.read_file("alias.txt") == "same file"


def test_links_that_stay_inside_are_followed_through_folders_too(
    tools: FileTools, base: Path
) -> None:
    (base / "real" / "sub").mkdir(parents=True)
    (base / "alias").symlink_to("real")
    (base / "real" / "sub" / "up.txt").symlink_to("../../real/note.txt")
    assert tools.write_file("alias/sub/new.txt", "via a link")["path"] == "real/sub/new.txt"
    assert (base / "real" / "sub" / "new.txt").read_text() == "via a link"
    assert tools.list_directory("alias")["path"] == "real"
    tools.write_file("alias/sub/up.txt", "noted")  # written where the link points
    assert (base / "real" / "note.txt").read_text() == "noted"
    assert (base / "real" / "sub" / "up.txt").is_symlink()
    assert tools.file_info("alias/sub/up.txt")["path"] == "real/note.txt"


def test_a_symlink_loop_is_refused(tools: FileTools, base: Path) -> None:
    (base / "a.txt").symlink_to("b.txt")
    (base / "b.txt").symlink_to("a.txt")
    refused = refusal(tools.read_file, "a.txt")
    assert refused.event is TRAVERSAL and "too many symlinks" in str(refused)


def test_a_base_directory_configured_through_a_symlink(tmp_path: Path, base: Path) -> None:
    configured = tmp_path / "configured"
    configured.symlink_to(base)
    tools = FileTools(PathGuard(configured, {".txt"}, max_file_size=100))
    assert tools.write_file(str(configured / "x.txt"), "x")["path"] == "x.txt"
    (base / "absolute.txt").symlink_to(configured / "x.txt")
    assert tools.read_file("absolute.txt") == "x"
    assert tools.read_file(str(base / "x.txt")) == "x"


def test_disallowed_extension_is_refused_for_read_and_write(tools: FileTools, base: Path) -> None:
    (base / "script.sh").write_text("echo")
    for action, args in [(tools.read_file, ("script.sh",)), (tools.write_file, ("x.py", "1"))]:
        refused = refusal(action, *args)
        assert refused.event is SecurityEventType.INVALID_FILE_TYPE
        assert ".txt" in str(refused)
    assert not (base / "x.py").exists()


def test_extensions_match_case_insensitively_and_with_several_dots(
    tools: FileTools, base: Path
) -> None:
    assert tools.write_file("REPORT.TXT", "ok")["bytes_written"] == 2
    assert tools.write_file("bundle.tar.gz", "x")["created"] is True


def test_oversize_write_and_read_are_refused(tools: FileTools, base: Path) -> None:
    refused = refusal(tools.write_file, "big.txt", "x" * 101)
    assert refused.event is SecurityEventType.LARGE_FILE_ATTEMPT
    assert "101 bytes, over the 100 byte limit" in str(refused)
    assert not (base / "big.txt").exists()
    (base / "big.txt").write_text("y" * 150)
    assert refusal(tools.read_file, "big.txt").event is SecurityEventType.LARGE_FILE_ATTEMPT
    assert tools.write_file("edge.txt", "z" * 100)["bytes_written"] == 100


def test_size_limit_counts_utf8_bytes_not_characters(tools: FileTools) -> None:
    with pytest.raises(Refusal):
        tools.write_file("wide.txt", "é" * 51)  # 102 bytes


def test_write_creates_folders_and_replaces_atomically(tools: FileTools, base: Path) -> None:
    first = tools.write_file("a/b/c.txt", "one")
    assert first == {"path": "a/b/c.txt", "bytes_written": 3, "created": True}
    os.chmod(base / "a/b/c.txt", 0o600)
    second = tools.write_file("a/b/c.txt", "two")
    assert second["created"] is False
    assert (base / "a/b/c.txt").stat().st_mode & 0o777 == 0o600  # permissions kept
    assert (base / "a/b/c.txt").read_text() == "two"
    assert [p.name for p in (base / "a/b").iterdir()] == ["c.txt"]  # no temporary left


def test_read_reports_missing_binary_and_directory_clearly(tools: FileTools, base: Path) -> None:
    with pytest.raises(OperationFailed, match="does not exist"):
        tools.read_file("absent.txt")
    (base / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(OperationFailed, match="not UTF-8"):
        tools.read_file("bin.txt")
    (base / "folder.txt").mkdir()
    with pytest.raises(OperationFailed, match=r"not a regular file|is a directory"):
        tools.read_file("folder.txt")
    with pytest.raises(OperationFailed, match="is a directory"):
        tools.write_file("folder.txt", "x")


def test_list_directory_describes_entries_without_following_links(
    tools: FileTools, base: Path, tmp_path: Path
) -> None:
    (base / "b.txt").write_text("12345")
    (base / "a").mkdir()
    (base / "out").symlink_to(tmp_path)
    listing = tools.list_directory()
    assert listing == {
        "path": ".",
        "truncated": False,
        "entries": [
            {"name": "a", "type": "directory", "size": None},
            {"name": "b.txt", "type": "file", "size": 5},
            {"name": "out", "type": "symlink", "size": None},
        ],
    }
    with pytest.raises(OperationFailed, match="does not exist"):
        tools.list_directory("nowhere")


def test_file_info_reports_size_type_and_whether_the_extension_is_allowed(
    tools: FileTools, base: Path
) -> None:
    (base / "data.json").write_text("{}")
    os.chmod(base / "data.json", 0o640)
    info = tools.file_info("data.json")
    assert info["size"] == 2 and info["type"] == "file" and info["allowed"] is True
    assert info["permissions"] == "0o640" and info["extension"] == ".json"
    assert tools.file_info(".")["type"] == "directory"


def test_tools_are_off_without_a_base_directory() -> None:
    tools = FileTools(None)
    refused = refusal(tools.list_directory)
    assert "BASE_DIRECTORY is not set" in str(refused)
    assert refused.event is None


def test_nul_byte_and_empty_path_are_refused(tools: FileTools) -> None:
    assert refusal(tools.read_file, "a\x00.txt").event is TRAVERSAL
    assert refusal(tools.file_info, "").event is TRAVERSAL


def test_suspicious_names_are_recognised() -> None:
    assert is_suspicious("config/.env")
    assert is_suspicious("db_password.txt")
    assert not is_suspicious("notes.txt")


def failure(action, *args) -> ToolCallError:
    with pytest.raises(ToolCallError) as caught:
        action(*args)
    return caught.value


def test_each_mistake_of_the_caller_is_a_client_error(tools: FileTools, base: Path) -> None:
    (base / "bin.txt").write_bytes(b"\xff\xfe\x00")
    (base / "big.txt").write_text("x" * 101)
    (base / "folder.txt").mkdir()
    (base / "plain.txt").write_text("a file")
    cases = {
        "missing file": (tools.read_file, "absent.txt", ClientError, "not_found"),
        "missing info": (tools.file_info, "absent.txt", ClientError, "not_found"),
        "missing folder": (tools.list_directory, "nowhere", ClientError, "not_found"),
        "traversal": (tools.read_file, "../secret.txt", Refusal, "refused"),
        "extension": (tools.read_file, "run.sh", Refusal, "refused"),
        "size": (tools.read_file, "big.txt", Refusal, "refused"),
        "not UTF-8": (tools.read_file, "bin.txt", ClientError, "not_text"),
        "a directory": (tools.read_file, "folder.txt", ClientError, None),
        "list a file": (tools.list_directory, "plain.txt", ClientError, "not_a_directory"),
        "path through a file": (tools.read_file, "plain.txt/x.txt", ClientError,
                                "not_a_directory"),
    }  # fmt: skip
    for name, (action, path, kind, detail) in cases.items():
        failed = failure(action, path)
        assert type(failed) is kind, name
        assert failed.outcome is Outcome.CLIENT_ERROR, name
        if detail is not None:
            assert failed.detail == detail, (name, failed.detail)
    written = failure(tools.write_file, "plain.txt/x.txt", "x")
    assert written.outcome is Outcome.CLIENT_ERROR and written.detail == "not_a_directory"
    oversize = failure(tools.write_file, "big2.txt", "x" * 101)
    assert oversize.outcome is Outcome.CLIENT_ERROR


def failing_os_call(monkeypatch: pytest.MonkeyPatch, name: str, code: int, when: str) -> None:
    """Make os.<name> fail with errno `code` for paths containing `when` (or for every call
    when the first argument is a descriptor)."""
    real = getattr(os, name)

    def broken(first, *args, **kwargs):
        if isinstance(first, int) or when in str(first):
            raise OSError(code, os.strerror(code))
        return real(first, *args, **kwargs)

    monkeypatch.setattr(os, name, broken)


@pytest.mark.parametrize(
    ("code", "detail"),
    [(errno.EIO, "io_error"), (errno.EACCES, "permission_denied"), (errno.ENOSPC, "no_space")],
)
def test_os_errors_on_the_base_directory_are_server_errors(
    tools: FileTools, base: Path, monkeypatch: pytest.MonkeyPatch, code: int, detail: str
) -> None:
    (base / "plain.txt").write_text("a file")
    failing_os_call(monkeypatch, "open", code, "plain.txt")
    failed = failure(tools.read_file, "plain.txt")
    assert type(failed) is ServerError and failed.outcome is Outcome.SERVER_ERROR
    assert failed.detail == detail
    assert os.strerror(code) in str(failed) or "permission denied" in str(failed)


def test_a_read_that_fails_half_way_is_a_server_error(
    tools: FileTools, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (base / "plain.txt").write_text("a file")

    def broken_read(fd: int, size: int) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "read", broken_read)
    failed = failure(tools.read_file, "plain.txt")
    assert failed.outcome is Outcome.SERVER_ERROR and failed.detail == "io_error"


def test_a_full_disk_during_a_write_is_a_server_error_and_leaves_no_temporary(
    tools: FileTools, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_os_call(monkeypatch, "fsync", errno.ENOSPC, "")
    failed = failure(tools.write_file, "new.txt", "content")
    assert type(failed) is ServerError and failed.detail == "no_space"
    assert "No space left on device" in str(failed)
    assert list(base.iterdir()) == []


def test_a_symlink_swapped_in_after_the_check_is_still_a_refusal(
    tools: FileTools, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (base / "plain.txt").write_text("a file")
    failing_os_call(monkeypatch, "open", errno.ELOOP, "plain.txt")
    failed = failure(tools.read_file, "plain.txt")
    assert isinstance(failed, Refusal) and failed.event is TRAVERSAL


def test_a_small_read_is_done_at_once_and_a_large_one_left_whole(tmp_path: Path) -> None:
    (tmp_path / "small.txt").write_text("x" * 100)
    (tmp_path / "large.txt").write_text("y" * 5000)
    tools = FileTools(PathGuard(tmp_path, [".txt"], 10_000))
    assert tools.read_small_file("small.txt", 4096) == "x" * 100
    assert tools.read_small_file("large.txt", 4096) is None
    assert tools.read_file("large.txt") == "y" * 5000
    with pytest.raises(Refusal):  # refusals come from the quick part already
        tools.read_small_file("../large.txt", 4096)

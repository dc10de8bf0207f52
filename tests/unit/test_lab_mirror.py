"""The lab finds its debootstrap mirror in the machine's own apt sources."""

import pytest

from lab.errors import LabError
from lab.mirror import find_mirror, parse_deb822, parse_one_line, pick_mirror

DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main\n"""


def test_deb822_uris_of_the_paragraph_serving_the_suite() -> None:
    assert pick_mirror(parse_deb822(DEB822), "bookworm") == "http://mirror.example/debian"


def test_security_suite_is_not_taken_for_the_release() -> None:
    sources = parse_deb822(DEB822.split("\n\n")[1])
    assert pick_mirror(sources, "bookworm") is None


def test_disabled_and_source_only_paragraphs_are_skipped() -> None:
    text = (
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n"
        "Enabled: no\n\n"
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb deb-src\nURIs: http://on.example/debian\nSuites: bookworm\n"
        "Components: main contrib\n"
    )
    assert pick_mirror(parse_deb822(text), "bookworm") == "http://on.example/debian"


def test_one_line_format_with_options_and_comments() -> None:
    text = (
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main # note\n"
    )
    assert pick_mirror(parse_one_line(text), "bookworm") == "http://one.example/debian"


def test_a_source_without_main_is_not_a_base_mirror() -> None:
    sources = parse_one_line("deb http://x.example/d bookworm contrib\n")
    assert pick_mirror(sources, "bookworm") is None


def test_find_mirror_reads_sources_list_d_and_ignores_other_files(tmp_path) -> None:
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "vendor.list.disabled").write_text("deb http://no.example/d bookworm main\n")
    (parts / "debian.sources").write_text(DEB822)
    assert find_mirror("bookworm", apt_dir=tmp_path) == "http://mirror.example/debian"


def test_no_usable_source_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "sources.list").write_text("deb http://x.example/d trixie main\n")
    with pytest.raises(
        LabError,
        match=r"'bookworm main', and no Debian mirror they name \(http://x.example/d\) publishes",
    ):
        find_mirror("bookworm", apt_dir=tmp_path, check=lambda url: False)


def test_another_release_takes_the_debian_mirror_that_publishes_it(tmp_path) -> None:
    """A bookworm machine's sources name no trixie; its Debian mirror serves trixie anyway."""
    (tmp_path / "sources.list").write_text(
        "deb http://vendor.example/apt cloud-sdk-bookworm main\n"
        "deb http://mirror.example/debian-security bookworm-security main\n"
        "deb http://mirror.example/debian bookworm main\n"
    )
    asked: list[str] = []

    def check(url: str) -> bool:
        asked.append(url)
        return True

    assert find_mirror("trixie", apt_dir=tmp_path, check=check) == "http://mirror.example/debian"
    assert asked == ["http://mirror.example/debian/dists/trixie/Release"]


def test_a_mirror_not_publishing_the_release_is_not_taken(tmp_path) -> None:
    (tmp_path / "sources.list").write_text("deb http://old.example/debian bullseye main\n")
    with pytest.raises(LabError, match="'trixie main'"):
        find_mirror("trixie", apt_dir=tmp_path, check=lambda url: False)


def test_a_source_naming_the_release_needs_no_check(tmp_path) -> None:
    (tmp_path / "sources.list").write_text("deb http://t.example/debian trixie main\n")

    def check(url: str) -> bool:
        raise AssertionError(f"asked {url}")

    assert find_mirror("trixie", apt_dir=tmp_path, check=check) == "http://t.example/debian"


def test_a_local_mirror_is_checked_on_disk(tmp_path) -> None:
    release = tmp_path / "mirror" / "dists" / "trixie" / "Release"
    release.parent.mkdir(parents=True)
    release.write_text("Suite: stable\n")
    (tmp_path / "sources.list").write_text(f"deb file://{tmp_path}/mirror bookworm main\n")
    assert find_mirror("trixie", apt_dir=tmp_path) == f"file://{tmp_path}/mirror"
    release.unlink()
    with pytest.raises(LabError):
        find_mirror("trixie", apt_dir=tmp_path)

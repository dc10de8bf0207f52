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
Components: main
"""


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
    with pytest.raises(LabError, match="'bookworm main'"):
        find_mirror("bookworm", apt_dir=tmp_path)

"""The base image's cache key and the build's progress reporting."""

import io

import pytest

from lab import base_image
from lab.base_image import (
    PACKAGES,
    SUITE,
    SUITES,
    base_path,
    cache_key,
    debootstrap_stage,
    ensure_base,
    prune_other_bases,
)
from lab.errors import LabError
from lab.progress import Progress


def test_cache_key_ignores_order_and_duplicates() -> None:
    assert cache_key("bookworm", ["a", "b"]) == cache_key("bookworm", ["b", "a", "a"])


def test_changing_the_package_list_suite_or_recipe_changes_the_key() -> None:
    key = cache_key(SUITE, PACKAGES)
    assert cache_key(SUITE, (*PACKAGES, "less")) != key
    assert cache_key("trixie", PACKAGES) != key
    assert cache_key(SUITE, PACKAGES, recipe=999) != key


def test_the_base_lives_outside_the_repo_named_by_its_key(tmp_path) -> None:
    key = cache_key(SUITE, PACKAGES)
    assert base_path(key, tmp_path) == tmp_path / f"base-{key}"


def test_the_bookworm_key_is_the_one_labs_built_before_releases_mixed() -> None:
    """Adding trixie must not make every machine rebuild its cached bookworm base."""
    assert cache_key("bookworm", PACKAGES) == "a130e7b6e711473f"


def test_each_release_has_a_base_of_its_own(tmp_path) -> None:
    paths = {base_path(cache_key(suite, PACKAGES), tmp_path) for suite in SUITES}
    assert len(paths) == len(SUITES) == 2


def test_an_unknown_release_is_refused_before_anything_is_built(tmp_path) -> None:
    with pytest.raises(LabError, match="no 'sid' hosts; use one of bookworm, trixie"):
        ensure_base("sid", cache_root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_pruning_keeps_every_releases_current_base(tmp_path, monkeypatch) -> None:
    """A bookworm-only lab must not remove the trixie base the next mixed lab boots from."""
    monkeypatch.setattr(base_image, "overlay_lower_dirs", lambda: set())
    current = {suite: base_path(cache_key(suite, PACKAGES), tmp_path) for suite in SUITES}
    old = base_path(cache_key("bookworm", (*PACKAGES, "less")), tmp_path)
    for path in [*current.values(), old]:
        path.mkdir()
    pruned = prune_other_bases(current["bookworm"])
    assert pruned == [old]
    assert all(path.is_dir() for path in current.values())
    assert not old.exists()


def test_base_has_what_the_lab_and_the_fleet_need() -> None:
    needed = {"systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-venv"}
    assert needed | {"iproute2", "sudo", "curl", "haproxy"} <= set(PACKAGES)


def test_debootstrap_lines_fold_into_few_phases() -> None:
    assert debootstrap_stage("I: Retrieving libc6 2.36-9\n") == (
        "downloading packages",
        "Retrieving libc6 2.36-9",
    )
    assert debootstrap_stage("I: Validating libc6 2.36-9\n")[0] == "downloading packages"
    assert debootstrap_stage("I: Configuring systemd...\n")[0] == "configuring"
    assert debootstrap_stage("W: something\n") == ("", "")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_output_rewrites_one_line_with_the_detail() -> None:
    stream = FakeTerminal()
    with Progress("building", stream=stream) as progress:
        progress.update("downloading packages", "Retrieving libc6")
    text = stream.getvalue()
    assert text.count("\n") == 1  # only the final newline
    assert text.count("\r") >= 2
    assert "downloading packages (Retrieving libc6)" in text


def test_plain_output_prints_one_line_per_phase_not_per_package() -> None:
    stream = io.StringIO()  # not a TTY
    with Progress("building", stream=stream) as progress:
        for line in ["I: Retrieving a 1", "I: Validating a 1", "I: Retrieving b 2"]:
            progress.update(*debootstrap_stage(line))
        progress.update("configuring", "x")
    lines = stream.getvalue().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "starting",
        "downloading packages",
        "configuring",
    ]
    assert all(line.startswith("[") and "s] building" in line for line in lines)

"""The agent's own registry key: made once (0600), read back the same, never shown."""

import os
import stat

import pytest

from mcp_mesh_sdk.agent.registry_key import (
    KEY_FILE,
    RegistryKeyError,
    key_path,
    load_or_create_key,
)


def test_the_key_is_made_once_0600_and_read_back_the_same(tmp_path) -> None:
    state = tmp_path / "state"  # not there yet
    first = load_or_create_key(state)
    assert stat.S_IMODE(key_path(state).stat().st_mode) == 0o600
    assert len(first.reveal()) >= 32
    assert load_or_create_key(state).reveal() == first.reveal()
    assert sorted(os.listdir(state)) == [KEY_FILE]  # no temporary file left behind
    assert first.reveal() not in repr(first) + str(first)


def test_two_hosts_get_different_keys(tmp_path) -> None:
    assert (
        load_or_create_key(tmp_path / "a").reveal() != load_or_create_key(tmp_path / "b").reveal()
    )


def test_a_looser_mode_is_tightened(tmp_path) -> None:
    key = load_or_create_key(tmp_path)
    key_path(tmp_path).chmod(0o644)  # e.g. restored by hand
    assert load_or_create_key(tmp_path).reveal() == key.reveal()
    assert stat.S_IMODE(key_path(tmp_path).stat().st_mode) == 0o600


def test_a_symlink_in_place_of_the_key_is_refused(tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("k" * 43)
    state = tmp_path / "state"
    state.mkdir()
    key_path(state).symlink_to(elsewhere)
    with pytest.raises(RegistryKeyError, match="cannot read the agent key"):
        load_or_create_key(state)


def test_a_damaged_key_is_an_error_naming_the_file_and_never_replaced(tmp_path) -> None:
    key_path(tmp_path).write_text("not a key: secret-looking-content\n")
    with pytest.raises(RegistryKeyError) as refused:
        load_or_create_key(tmp_path)
    assert str(key_path(tmp_path)) in str(refused.value)
    assert "registry forget" in str(refused.value)
    assert "secret-looking-content" not in str(refused.value)
    assert key_path(tmp_path).read_text() == "not a key: secret-looking-content\n"

import pytest

from mcp_mesh_sdk.envfile import parse_env_text, read_env_file
from mcp_mesh_sdk.errors import ConfigError


def test_parses_what_systemd_environment_files_hold() -> None:
    text = "# comment\n\nA=1\nexport B = two words\nC='quoted # not a comment'\nD=\"x\"\n"
    assert parse_env_text(text) == {
        "A": "1",
        "B": "two words",
        "C": "quoted # not a comment",
        "D": "x",
    }


def test_every_bad_line_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_env_text("GOOD=1\nnot a pair\nX='open\n", source="agent.env")
    message = str(caught.value)
    assert "agent.env:2" in message
    assert "X: unbalanced quotes" in message


def test_missing_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        read_env_file(tmp_path / "absent.env")


def test_the_named_file_wins_over_the_inherited_environment(tmp_path, monkeypatch) -> None:
    from mcp_mesh_sdk.envfile import environment_with

    monkeypatch.setenv("LOG_LEVEL", "INFO")
    monkeypatch.setenv("KEPT", "yes")
    env_file = tmp_path / "agent.env"
    env_file.write_text("LOG_LEVEL=DEBUG\n")
    env = environment_with(env_file)
    assert (env["LOG_LEVEL"], env["KEPT"]) == ("DEBUG", "yes")
    assert environment_with(None)["LOG_LEVEL"] == "INFO"

"""The registry's database choice: SQLite unless a PostgreSQL URL is set; the URL is a secret."""

import pytest

from mcp_mesh_sdk.cli import main
from mcp_mesh_sdk.errors import ConfigError
from mcp_mesh_sdk.registry import pgschema
from mcp_mesh_sdk.registry.config import load_registry_config

TOKEN = {"MCP_MESH_REGISTRY_TOKEN": "a-long-enough-registry-token"}
URL = "postgresql://registry:Pa55-w0rd-never-shown@db.example:5432/registry"


def test_sqlite_stays_the_default() -> None:
    config = load_registry_config(TOKEN)
    assert config.database_url is None
    assert config.redacted()["MCP_MESH_REGISTRY_DATABASE_URL"] == ""


@pytest.mark.parametrize("name", ["DATABASE_URL", "MCP_MESH_REGISTRY_DATABASE_URL"])
def test_either_variable_selects_postgresql_and_the_url_is_never_shown(name: str) -> None:
    config = load_registry_config({**TOKEN, name: URL})
    assert config.database_url is not None and config.database_url.reveal() == URL
    assert "Pa55" not in repr(config)
    assert "Pa55" not in str(config.redacted())


def test_the_registry_variable_wins_over_the_seed_one() -> None:
    other = URL.replace("db.example", "other.example")
    config = load_registry_config(
        {**TOKEN, "DATABASE_URL": other, "MCP_MESH_REGISTRY_DATABASE_URL": URL}
    )
    assert config.database_url is not None and config.database_url.reveal() == URL


def test_url_from_a_file(tmp_path) -> None:
    path = tmp_path / "database-url"
    path.write_text(URL + "\n")
    config = load_registry_config({**TOKEN, "MCP_MESH_REGISTRY_DATABASE_URL_FILE": str(path)})
    assert config.database_url is not None and config.database_url.reveal() == URL


def test_a_url_of_another_database_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_registry_config({**TOKEN, "DATABASE_URL": "mysql://root:Pa55-secret@db/registry"})
    assert "DATABASE_URL" in str(caught.value)
    assert "Pa55" not in str(caught.value)


def test_migrate_registry_database_without_a_url_says_what_to_set(monkeypatch, capsys) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("MCP_MESH_REGISTRY_DATABASE_URL", raising=False)
    assert main(["migrate", "--registry-database"]) == 2
    assert "set MCP_MESH_REGISTRY_DATABASE_URL or DATABASE_URL" in capsys.readouterr().err


def test_registry_database_migrations_are_forward_only(monkeypatch, capsys) -> None:
    monkeypatch.setenv("MCP_MESH_REGISTRY_DATABASE_URL", URL)
    assert main(["migrate", "--registry-database", "--rollback"]) == 2
    assert "forward-only" in capsys.readouterr().err


def test_unreachable_database_is_one_line_without_the_password(monkeypatch, capsys) -> None:
    url = "postgresql://registry:Pa55-w0rd@127.0.0.1:1/registry?connect_timeout=2"
    monkeypatch.setenv("MCP_MESH_REGISTRY_DATABASE_URL", url)
    assert main(["migrate", "--registry-database"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect to the registry database" in err
    assert "Pa55" not in err and "Traceback" not in err


def test_sql_migrations_are_numbered_and_shipped() -> None:
    available = pgschema.discover()
    assert [m.version for m in available] == list(range(1, len(available) + 1))
    assert available[0].name == "agents" and "CREATE TABLE agents" in available[0].sql
    assert pgschema.latest_version() == len(available)

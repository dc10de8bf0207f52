"""A token per client: the clients file, who a token belongs to, reloading, check-config."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest

from mcp_mesh_sdk.agent.clients import (
    CHECK_INTERVAL,
    ClientsFileError,
    ClientTokens,
    parse_clients,
)
from mcp_mesh_sdk.cli import EXIT_CONFIG, main
from mcp_mesh_sdk.config import check_agent_env
from mcp_mesh_sdk.envreader import Secret

OPERATOR_TOKEN = "operator-token-0123456789abcdef0123"
ALICE = "alice-token-0123456789abcdef0123456789"
BOB = "bob-token-0123456789abcdef0123456789abc"


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def clients_text(**tokens: str) -> str:
    return "# name sha256\n" + "".join(f"{name} {sha(token)}\n" for name, token in tokens.items())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_clients_file_maps_each_token_hash_to_its_client() -> None:
    clients = parse_clients(clients_text(alice=ALICE, bob=BOB) + "\n  # a comment\n")
    assert sorted(clients.values()) == ["alice", "bob"]
    assert clients[hashlib.sha256(ALICE.encode()).digest()] == "alice"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"alice {ALICE}\n", "line 1 (alice): expected the token's SHA-256"),
        ("alice\n", "line 1: expected `name sha256-hex`"),
        (f"al ice {sha(ALICE)}\n", "line 1: expected `name sha256-hex`"),
        (f"-alice {sha(ALICE)}\n", "line 1: a client name is"),
        (f"operator {sha(ALICE)}\n", "line 1: the name 'operator' is reserved"),
        (f"anonymous {sha(ALICE)}\n", "line 1: the name 'anonymous' is reserved"),
        (f"alice {sha(ALICE)}\nalice {sha(BOB)}\n", "line 2: client 'alice' is named twice"),
        (f"alice {sha(ALICE)}\nbob {sha(ALICE)}\n", "line 2 (bob): same token as 'alice'"),
        (f"alice {sha(ALICE).upper()}\n", "line 1 (alice): expected the token's SHA-256"),
    ],
)
def test_a_bad_clients_file_names_the_line_and_never_quotes_it(text: str, reason: str) -> None:
    with pytest.raises(ClientsFileError) as caught:
        parse_clients(text)
    assert str(caught.value).startswith(reason)
    assert ALICE not in str(caught.value)


def test_each_token_names_its_client_and_the_shared_token_becomes_the_operator(
    tmp_path: Path,
) -> None:
    path = tmp_path / "clients"
    path.write_text(clients_text(alice=ALICE, bob=BOB))
    tokens = ClientTokens(Secret(OPERATOR_TOKEN), path)
    assert tokens.identify(ALICE) == "alice"
    assert tokens.identify(BOB) == "bob"
    assert tokens.identify(OPERATOR_TOKEN) == "operator"
    assert tokens.identify("wrong-token") is None
    assert tokens.identify(sha(ALICE)) is None  # the hash itself is no token
    assert tokens.clients == ["alice", "bob"]


def test_without_clients_the_shared_token_is_the_default_client(tmp_path: Path) -> None:
    assert ClientTokens(Secret(OPERATOR_TOKEN)).identify(OPERATOR_TOKEN) == "default"
    empty = tmp_path / "clients"
    empty.write_text("# no clients yet\n")
    without = ClientTokens(Secret(OPERATOR_TOKEN), empty)
    assert without.identify(OPERATOR_TOKEN) == "default"
    assert without.clients == []
    assert ClientTokens(Secret("")).identify("") is None  # an empty token admits no one


def test_a_changed_file_counts_within_a_second_and_a_broken_one_keeps_the_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mcp_mesh_sdk.agent.clients")
    path = tmp_path / "clients"
    path.write_text(clients_text(alice=ALICE, bob=BOB))
    clock = Clock()
    tokens = ClientTokens(Secret(OPERATOR_TOKEN), path, clock=clock)

    replacement = tmp_path / "clients.new"  # as Ansible writes it: a new file renamed over
    replacement.write_text(clients_text(alice=ALICE))
    os.replace(replacement, path)
    clock.now += CHECK_INTERVAL / 2
    assert tokens.identify(BOB) == "bob"  # not looked at yet: at most once a second
    clock.now += CHECK_INTERVAL
    assert tokens.identify(BOB) is None
    assert tokens.identify(ALICE) == "alice"
    assert "added none, revoked bob" in caplog.text

    path.write_text(f"carol {ALICE}\n")  # a token where its hash belongs
    clock.now += CHECK_INTERVAL
    assert tokens.identify(ALICE) == "alice"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "last good one stay in force" in errors[0].getMessage()
    clock.now += CHECK_INTERVAL
    tokens.identify(ALICE)
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1  # logged once

    path.unlink()
    clock.now += CHECK_INTERVAL
    assert tokens.identify(ALICE) == "alice"
    path.write_text(clients_text(bob=BOB))
    clock.now += CHECK_INTERVAL
    assert (tokens.identify(ALICE), tokens.identify(BOB)) == (None, "bob")
    assert tokens.identify(OPERATOR_TOKEN) == "operator"

    path.write_text(clients_text(bob=ALICE))  # bob's token rotated: the old one stops at once
    clock.now += CHECK_INTERVAL
    assert (tokens.identify(ALICE), tokens.identify(BOB)) == ("bob", None)
    assert caplog.text.count("reloaded") == 3
    assert ALICE not in caplog.text and BOB not in caplog.text


def env_with_clients(tmp_path: Path, text: str | None) -> dict[str, str]:
    env = {"MCP_MESH_TOKEN": OPERATOR_TOKEN, "BASE_DIRECTORY": str(tmp_path)}
    if text is not None:
        (tmp_path / "clients").write_text(text)
        env["MCP_MESH_CLIENTS_FILE"] = str(tmp_path / "clients")
    return env


def test_the_agent_config_refuses_a_bad_clients_file_and_warns_without_clients(
    tmp_path: Path,
) -> None:
    checked = check_agent_env(env_with_clients(tmp_path, clients_text(alice=ALICE)))
    assert checked.config is not None
    assert checked.config.clients_file == tmp_path / "clients"
    assert not any(w.startswith("MCP_MESH_CLIENTS_FILE") for w in checked.warnings)

    for text in (None, "# nobody\n"):
        checked = check_agent_env(env_with_clients(tmp_path, text))
        assert any("every client shares MCP_MESH_TOKEN" in w for w in checked.warnings)

    checked = check_agent_env(env_with_clients(tmp_path, "alice\n"))
    assert [p.variable for p in checked.problems] == ["MCP_MESH_CLIENTS_FILE"]
    checked = check_agent_env(env_with_clients(tmp_path, clients_text(alice=OPERATOR_TOKEN)))
    assert "has MCP_MESH_TOKEN as its token" in checked.problems[0].reason
    assert OPERATOR_TOKEN not in str(checked.problems)


def test_check_config_validates_a_clients_file_and_prints_no_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "clients"
    path.write_text(clients_text(alice=ALICE, bob=BOB))
    assert main(["check-config", "--clients-file", str(path)]) == 0
    assert "is valid: 2 client(s) alice, bob" in capsys.readouterr().out

    path.write_text(f"alice {ALICE}\n")
    assert main(["check-config", "--clients-file", str(path)]) == EXIT_CONFIG
    captured = capsys.readouterr()
    assert "MCP_MESH_CLIENTS_FILE: line 1 (alice)" in captured.err
    assert ALICE not in captured.out + captured.err

    path.write_text("")
    assert main(["check-config", "--clients-file", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] and report["clients"] == []
    assert "deprecated" in report["warnings"][0]


def test_check_config_of_an_env_file_warns_that_the_shared_token_is_deprecated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / "agent.env"
    env.write_text(f"MCP_MESH_TOKEN={OPERATOR_TOKEN}\nBASE_DIRECTORY={tmp_path}\n")
    assert main(["check-config", "--env-file", str(env)]) == 0
    captured = capsys.readouterr()
    assert "MCP_MESH_CLIENTS_FILE: no clients" in captured.err
    assert "deprecated" in captured.err
    assert OPERATOR_TOKEN not in captured.out + captured.err

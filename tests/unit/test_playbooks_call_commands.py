"""Playbooks only orchestrate: the tables and verdicts they print come from commands.

Each playbook listed in CALLS must run the commands named there and print what a command it ran
returned; no playbook listed may build a table, measure an age or judge rows in Jinja.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"

# playbook -> the command lines (words in order) it must run
CALLS: dict[str, list[str]] = {
    "verify_backup.yml": ["backup report"],
    "fleet_status.yml": ["-m mesh_ops.status", "incidents --json --open"],
    "lab_facts.yml": ["-m lab facts"],
}

# Jinja that computes what a command should: ages, table layout, rows and verdicts
COMPUTING = {
    "an age": re.compile(r"strftime|to_datetime|total_seconds|\bnow\("),
    "a table": re.compile(r"\b(ljust|rjust|center|wordwrap)\b|\bformat\(|\|\s*format\b"),
    "rows in a loop": re.compile(r"\{%-?\s*(for|set)\b"),
    "a verdict from rows": re.compile(r"\b(selectattr|rejectattr)\b|sort\(attribute"),
}
COMMAND_MODULES = {"ansible.builtin.command", "command", "ansible.builtin.shell", "shell"}
PRINT_MODULES = {"ansible.builtin.debug", "debug"}


def tasks(node: Any) -> Iterator[dict[str, Any]]:
    """Every task of the plays, blocks included."""
    if isinstance(node, list):
        for item in node:
            yield from tasks(item)
    elif isinstance(node, dict):
        if any(module in node for module in COMMAND_MODULES | PRINT_MODULES) or "name" in node:
            yield node
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            yield from tasks(node.get(key))


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)


def command_words(task: dict[str, Any]) -> list[str]:
    """The words of the command line a command task runs, argv list or templated string."""
    module = next((task[m] for m in COMMAND_MODULES if m in task), None)
    if module is None:
        return []
    line = (module.get("argv") or module.get("cmd")) if isinstance(module, dict) else module
    if isinstance(line, list):
        return [str(word) for word in line]
    return re.findall(r"[\w.-]+", str(line))


def runs(task: dict[str, Any], command: str) -> bool:
    wanted = command.split()
    words = command_words(task)
    return any(words[i : i + len(wanted)] == wanted for i in range(len(words)))


def load(name: str) -> Any:
    return yaml.safe_load((PLAYBOOKS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize(("playbook", "command"), [(p, c) for p, cs in CALLS.items() for c in cs])
def test_the_playbook_runs_the_command(playbook: str, command: str) -> None:
    assert any(runs(task, command) for task in tasks(load(playbook))), (
        f"{playbook} does not run `{command}`"
    )


@pytest.mark.parametrize("playbook", CALLS)
def test_what_the_playbook_prints_is_a_commands_output(playbook: str) -> None:
    every = list(tasks(load(playbook)))
    registered = {task["register"] for task in every if command_words(task) and "register" in task}
    printed = [task for task in every if any(module in task for module in PRINT_MODULES)]
    assert printed, f"{playbook} prints nothing"
    for task in printed:
        text = " ".join(strings(task))
        assert any(re.search(rf"\b{name}\.stdout", text) for name in registered), (
            f"{playbook}: {task.get('name')!r} prints no command's output"
        )


@pytest.mark.parametrize("playbook", CALLS)
@pytest.mark.parametrize("what", COMPUTING)
def test_the_playbook_computes_nothing_in_jinja(playbook: str, what: str) -> None:
    found = [text for text in strings(load(playbook)) if COMPUTING[what].search(text)]
    assert not found, f"{playbook} computes {what} in Jinja: {found}"


def test_verify_backup_judges_the_hosts_backups_with_the_controllers_copies() -> None:
    every = list(tasks(load("verify_backup.yml")))
    reports = [task for task in every if runs(task, "backup report")]
    on_host = [task for task in reports if "delegate_to" not in task]
    on_controller = [task for task in reports if task.get("delegate_to") == "localhost"]
    assert on_host and "--json" in command_words(on_host[0])
    assert on_controller, "the controller's copies are not verified"
    words = command_words(on_controller[0])
    assert {"--from-json", "--copies"} <= set(words)
    module = next(on_controller[0][m] for m in COMMAND_MODULES if m in on_controller[0])
    assert on_host[0]["register"] in module["stdin"]  # the host's rows, judged with the copies
    failing = [task for task in every if "ansible.builtin.fail" in task or "fail" in task]
    assert failing and on_controller[0]["register"] in str(failing[0]["when"])


def test_fleet_status_hands_every_agents_reads_and_the_balancers_to_mesh_ops_status() -> None:
    every = list(tasks(load("fleet_status.yml")))
    [render] = [task for task in every if runs(task, "-m mesh_ops.status")]
    assert render.get("delegate_to") == "localhost" and render.get("run_once") is True
    stdin = next(render[m] for m in COMMAND_MODULES if m in render)["stdin"]
    assert "_mesh_status_gathered" in stdin and "_mesh_status_lb" in stdin
    [kept] = [
        task["ansible.builtin.set_fact"] for task in every if "ansible.builtin.set_fact" in task
    ]
    # what mesh_ops.status takes for one agent (the same the SSH probe of `mesh-ops status` reads)
    assert set(kept["_mesh_status_gathered"]) == {
        "service",
        "health",
        "ready",
        "detailed",
        "incidents",
    }
    [balancer] = [task for task in every if task.get("register") == "_mesh_status_lb"]
    assert runs(balancer, "status --json") and "lb" in command_words(balancer)


def everything_run_by(name: str, folder: Path = PLAYBOOKS) -> Iterator[dict[str, Any]]:
    """The tasks of a playbook or task file, following imported playbooks and task files."""
    path = folder / name
    for task in tasks(yaml.safe_load(path.read_text(encoding="utf-8"))):
        yield task
        for keyword in ("ansible.builtin.import_playbook", "ansible.builtin.import_tasks",
                        "ansible.builtin.include_tasks"):  # fmt: skip
            target = task.get(keyword)
            if isinstance(target, str) and "{{" not in target:
                yield from everything_run_by(target, path.parent)


@pytest.mark.parametrize(
    "command", ["release activate", "release analyse", "release summary", "backup create"]
)
def test_upgrade_runs_the_commands_that_judge_the_release(command: str) -> None:
    assert any(runs(task, command) for task in everything_run_by("upgrade.yml")), (
        f"upgrade.yml does not run `{command}`"
    )


def test_a_failed_switch_is_reported_from_the_commands_json_not_from_stderr() -> None:
    switch = list(everything_run_by("switch_release.yml", PLAYBOOKS / "tasks"))
    activate = next(task for task in switch if runs(task, "release activate"))
    assert "--json" in command_words(activate)
    failing = [task for task in switch if "ansible.builtin.fail" in task]
    assert failing, "switch_release.yml does not fail on a failed activation"
    message = failing[0]["ansible.builtin.fail"]["msg"]
    assert "failed_step" in message and ".error" in message

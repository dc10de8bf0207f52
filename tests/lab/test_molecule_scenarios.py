"""Each public role tested alone: its molecule scenario (molecule/<role>/) converges it on a fresh
lab host, converges again expecting no change, and verifies it with testinfra.

This runs what README "Testing one role" gives, `molecule test -s <role>`, for every public role
in one invocation, so molecule's shared state brings up ONE lab (scenario default: `lab up`,
lb1, agent1..3, db1) for all of them and takes it down at the end. The lab is its own
(MESH_MOLECULE_LAB, default `mol`), not the session's: no role may find a host already deployed.
Each output line is stamped with the seconds since the start, and the time of every step is
printed, so CI's log shows what the scenarios cost.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.lab.conftest import REPO, VENV_BIN, run_lab
from tests.unit.test_molecule_layout import PUBLIC_ROLES

SCENARIOS_TIMEOUT = 1200
STEP = re.compile(r"\[(?P<scenario>\w+) > (?P<step>\w+)\] (?P<what>Executing|Executed: \w+)")


def run_stamped(command: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    """Run `command`, its output lines each prefixed with the seconds since it started."""
    started = time.monotonic()
    lines = []
    with subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(f"{time.monotonic() - started:7.1f} {line.rstrip()}")
    return process.returncode, lines


def step_times(lines: list[str]) -> list[tuple[str, float]]:
    """("scenario > step", seconds) for each step molecule ran, in order."""
    times, begun = [], {}
    for line in lines:
        match = STEP.search(line)
        if not match:
            continue
        name = f"{match['scenario']} > {match['step']}"
        stamp = float(line.split(maxsplit=1)[0])
        if match["what"] == "Executing":
            begun.setdefault(name, stamp)
        elif name in begun:
            times.append((name, stamp - begun.pop(name)))
    return times


@pytest.mark.timeout(SCENARIOS_TIMEOUT)
def test_every_public_role_passes_its_scenario_alone(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, mounts, containers)")
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MESH_MOLECULE_LAB": os.environ.get("MESH_MOLECULE_LAB", "mol"),
        # molecule's state and inventory links for this run only
        "MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "molecule"),
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
    }
    selection = [argument for role in PUBLIC_ROLES for argument in ("-s", role)]
    started = time.monotonic()
    try:
        returncode, lines = run_stamped([str(VENV_BIN / "molecule"), "test", *selection], env)
    finally:
        # molecule destroys the lab even when a step fails; not when it is itself cut short
        if run_lab("status", name=env["MESH_MOLECULE_LAB"]).returncode == 0:
            run_lab("down", name=env["MESH_MOLECULE_LAB"])
    wall = time.monotonic() - started
    steps = step_times(lines)
    print(f"\nmolecule scenarios: {wall:.1f} s wall")
    for name, seconds in steps:
        print(f"  {name:40} {seconds:6.1f} s")
    output = "\n".join(lines)
    assert returncode == 0, f"molecule test failed (exit {returncode}):\n{output[-12000:]}"
    done = {name for name, _ in steps}
    for role in PUBLIC_ROLES:
        for step in ("converge", "idempotence", "verify"):
            assert f"{role} > {step}" in done, f"{role}: no {step} step ran\n{output[-6000:]}"
    assert {"default > create", "default > destroy"} <= done
    assert output.count("default > create] Executing") == 1, "more than one lab was brought up"

"""The lab command's answers to bad input and to a lab that is not up: a message, no traceback."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_lab(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MESH_LAB_STATE_DIR=str(state_dir))
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], cwd=REPO, env=env, capture_output=True, text=True
    )


def test_unsafe_lab_name_is_refused_without_traceback(tmp_path) -> None:
    done = run_lab("status", "--name", "Bad-Name", state_dir=tmp_path)
    assert done.returncode == 1
    assert "lab name 'Bad-Name' is not allowed" in done.stderr
    assert "Traceback" not in done.stderr


def test_status_of_a_lab_that_is_not_up_says_so_and_fails(tmp_path) -> None:
    done = run_lab("status", "--name", "nolab", state_dir=tmp_path)
    assert done.returncode == 1
    assert "lab 'nolab' is not up" in done.stdout


def test_demo_needs_a_lab_that_is_up(tmp_path) -> None:
    done = run_lab("demo", "--name", "nolab", state_dir=tmp_path)
    assert done.returncode == 1
    assert "run `make lab-up` first" in done.stderr


def test_unknown_command_is_a_usage_error(tmp_path) -> None:
    done = run_lab("reboot", state_dir=tmp_path)
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_facts_prints_one_aligned_row_per_host_sorted_by_name(tmp_path) -> None:
    records = (
        '[{"host": "lb1", "address": "10.0.0.10", "groups": ["loadbalancer", "registry"],'
        ' "os": "Debian 13.1", "python": "3.13.5", "systemd": "257.8-1", "state": "running"},'
        ' {"host": "agent1", "address": "10.0.0.11", "groups": ["agents"],'
        ' "os": "Debian 12.12", "python": "3.11.2", "systemd": "252.39-1", "state": "degraded"}]'
    )
    done = subprocess.run(
        [sys.executable, "-m", "lab", "facts"], cwd=REPO, input=records,
        capture_output=True, text=True, env=dict(os.environ, MESH_LAB_STATE_DIR=str(tmp_path)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["HOST", "ADDRESS", "GROUPS", "OS", "PYTHON", "SYSTEMD", "STATE"]
    assert lines[1].split() == ["agent1", "10.0.0.11", "agents", "Debian", "12.12", "3.11.2",
                                "252.39-1", "degraded"]  # fmt: skip
    assert lines[2].split()[:3] == ["lb1", "10.0.0.10", "loadbalancer,registry"]
    assert lines[1].index("252") == lines[0].index("SYSTEMD")


def test_facts_refuses_input_that_is_not_a_list_of_records(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lab", "facts"], cwd=REPO, input="{not json",
        capture_output=True, text=True, env=dict(os.environ, MESH_LAB_STATE_DIR=str(tmp_path)),
    )  # fmt: skip
    assert done.returncode == 1
    assert "stdin is not JSON" in done.stderr and "Traceback" not in done.stderr


def test_up_refuses_an_unknown_release_before_building_anything(tmp_path) -> None:
    cache = tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, "-m", "lab", "up", "--name", "nolab", "--agent-distros", "bookworm,sid"],
        cwd=REPO,
        env=dict(os.environ, MESH_LAB_STATE_DIR=str(tmp_path), MESH_LAB_CACHE_DIR=str(cache)),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "'sid' is not a release the lab builds" in done.stderr
    assert "Traceback" not in done.stderr
    assert not cache.exists()
    assert not (tmp_path / "nolab").exists()

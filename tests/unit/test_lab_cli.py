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

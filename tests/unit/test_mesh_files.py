"""mcp_mesh.ops.mesh_files, run by Ansible on this machine: a service's directories and files in
one module run, each file checked before it replaces the live one, with the check-mode and
--diff answers that ansible.builtin.file and template give, and a secret file's content never
in the output."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET = "TOKEN-NEVER-SHOWN-4f1c"
# Stands in for check-config: refuses a file that says REJECT, as check-config names a bad line.
CHECKER = """#!/bin/sh
if grep -q REJECT "$1"; then echo "line 1 is not NAME=VALUE" >&2; exit 1; fi
"""
TEMPLATE = """# {{ ansible_managed }}
{% for key, value in mesh_common_file.env.items() %}
{{ key }}={{ value }}
{% endfor %}
"""

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the module sets owners (run as root, like the lab)"
)


def run(
    tmp_path: Path, files: list[dict[str, Any]], *args: str, absent: list[str] | None = None
) -> tuple[int, str]:
    """One play with one mesh_files task (`absent`, directories under tmp_path/srv, `files`)."""
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "service.env.j2").write_text(TEMPLATE)
    task = {
        "mcp_mesh.ops.mesh_files": {
            "template_var": "mesh_common_file",
            "absent": absent or [],
            "directories": [
                {"path": str(tmp_path / "srv"), "owner": "root", "group": "root", "mode": "0750"},
                {"path": str(tmp_path / "srv" / "etc"), "mode": "0700"},
            ],
            "files": files,
        },
        "register": "written",
    }
    said = (
        "NEW={{ written.new_files | map('basename') | join(',') }}"
        " CHANGED={{ written.changed_paths | to_json }}"
    )
    show = {"ansible.builtin.debug": {"msg": said}}
    play = {"hosts": "localhost", "gather_facts": False, "tasks": [task, show]}
    (tmp_path / "play.yml").write_text(json.dumps([play]))
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i", "localhost,", "-c", "local", str(tmp_path / "play.yml"), *args,
            "-e", f"ansible_python_interpreter={sys.executable}",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def service_files(tmp_path: Path, token: str = SECRET) -> list[dict[str, Any]]:
    checker = tmp_path / "check"
    checker.write_text(CHECKER)
    checker.chmod(0o755)
    etc = tmp_path / "srv" / "etc"
    return [
        {"dest": str(etc / "ca.pem"), "content": "CA TEXT\n", "mode": "0644"},
        {
            "src": "service.env.j2",
            "dest": str(etc / "service.env"),
            "env": {"PORT": 8080, "TOKEN": token},
            "secret": True,
            "mode": "0640",
            "validate": f"{checker} %s",
        },
        {"dest": str(etc / "service.unit"), "content": "[Service]\nExecStart=/bin/true\n"},
    ]


def test_one_run_writes_every_directory_and_file_and_a_second_changes_nothing(
    tmp_path: Path,
) -> None:
    files = service_files(tmp_path)
    etc = tmp_path / "srv" / "etc"
    rc, out = run(tmp_path, files, "--check", "--diff")
    assert rc == 0 and "changed=1" in out, out
    assert "NEW=ca.pem,service.env,service.unit " in out, out  # new, not replaced: callers tell
    assert not (tmp_path / "srv").exists()  # check mode touches nothing
    assert "+ExecStart=/bin/true" in out  # a file that may be shown is diffed
    assert f"{etc / 'service.env'}: new, (secret: its content is not shown)" in out
    assert SECRET not in out

    rc, out = run(tmp_path, files, "-vvv")
    assert rc == 0 and "changed=1" in out, out
    assert SECRET not in out  # not in the module's arguments or its result either
    env = (etc / "service.env").read_text()
    assert env.startswith("# Ansible managed") and env.endswith("PORT=8080\nTOKEN=" + SECRET + "\n")
    assert "\n\n" not in env  # rendered with trim_blocks, as ansible.builtin.template renders
    assert stat.S_IMODE((tmp_path / "srv").stat().st_mode) == 0o750
    assert stat.S_IMODE(etc.stat().st_mode) == 0o700
    assert stat.S_IMODE((etc / "service.env").stat().st_mode) == 0o640
    assert not [p.name for p in etc.iterdir() if p.name.startswith(".")]  # no temporary left

    rc, out = run(tmp_path, files, "--diff")
    assert rc == 0 and "changed=0" in out and "CHANGED=[]" in out, out

    (etc / "ca.pem").chmod(0o600)  # drifted: corrected, and only it is named
    rc, out = run(tmp_path, files, "--diff")
    assert rc == 0 and f'NEW= CHANGED=["{etc / "ca.pem"}"]' in out, out
    assert "-    mode: '0600'" in out and "+    mode: '0644'" in out, out
    assert stat.S_IMODE((etc / "ca.pem").stat().st_mode) == 0o644

    files[2]["content"] += "Restart=always\n"  # a unit systemd has loaded: replaced, not new
    rc, out = run(tmp_path, files)
    assert rc == 0 and f'NEW= CHANGED=["{etc / "service.unit"}"]' in out, out


def test_paths_in_absent_are_removed_first_and_only_once(tmp_path: Path) -> None:
    files = service_files(tmp_path)
    old = tmp_path / "srv" / "tls"  # a directory with a key in it, a file, a dangling link
    (old / "sub").mkdir(parents=True)
    (old / "sub" / "server.pem").write_text("KEY\n")
    (tmp_path / "srv" / "stale.conf").write_text("old\n")
    (tmp_path / "srv" / "gone").symlink_to(tmp_path / "nowhere")
    absent = [str(old), str(tmp_path / "srv" / "stale.conf"), str(tmp_path / "srv" / "gone"),
              str(tmp_path / "never-there")]  # fmt: skip

    rc, out = run(tmp_path, files, "--check", "--diff", absent=absent)
    assert rc == 0 and "changed=1" in out, out
    named = [out.find(f'"{path}"') for path in [*absent, str(tmp_path / "srv" / "etc")]]
    assert named[3] == -1 and -1 < named[0] < named[1] < named[2] < named[4], out  # in order
    assert "-    state: directory" in out and "+    state: absent" in out, out
    assert (old / "sub" / "server.pem").exists()  # check mode removes nothing

    rc, out = run(tmp_path, files, absent=absent)
    assert rc == 0 and "changed=1" in out, out
    assert not old.exists() and not (tmp_path / "srv" / "stale.conf").exists()
    assert not (tmp_path / "srv" / "gone").is_symlink()
    assert (tmp_path / "srv" / "etc" / "ca.pem").exists()  # what is made still comes after

    rc, out = run(tmp_path, files, "--check", absent=absent)
    assert rc == 0 and "changed=0" in out and "CHANGED=[]" in out, out


def test_a_refused_file_keeps_the_live_one_and_names_why_never_its_content(
    tmp_path: Path,
) -> None:
    assert run(tmp_path, service_files(tmp_path))[0] == 0
    etc = tmp_path / "srv" / "etc"
    live = (etc / "service.env").read_text()
    files = service_files(tmp_path, token="REJECT-" + SECRET)
    files[0]["content"] = "NEW CA TEXT\n"
    files[2]["content"] = "[Service]\nExecStart=/bin/false\n"
    rc, out = run(tmp_path, files)
    assert rc == 2, out
    assert f"{etc / 'service.env'} was not changed" in out
    assert "line 1 is not NAME=VALUE" in out  # the check's own words
    assert SECRET not in out
    assert (etc / "service.env").read_text() == live
    assert (etc / "ca.pem").read_text() == "NEW CA TEXT\n"  # written before it, as a task would
    assert (etc / "service.unit").read_text().endswith("/bin/true\n")  # after it: not reached
    assert not [p.name for p in etc.iterdir() if p.name.startswith(".")]


# Runs the module as Ansible would on a host (its arguments from a file), with AnsibleModule.log,
# which writes to the journal, recording what it was given instead.
LOG_PROBE = """
import runpy, sys
from ansible.module_utils import basic
logged = []
basic.AnsibleModule.log = lambda self, msg, log_args=None: logged.append(msg)
sys.argv = ["mesh_files", sys.argv[1]]
try:
    runpy.run_path({module!r}, run_name="__main__")
except SystemExit:
    pass
print("LOGGED", logged, file=sys.stderr)
"""


def test_a_secret_never_reaches_the_hosts_journal(tmp_path: Path) -> None:
    """AnsibleModule logs each run's arguments to the host's journal; a secret file's text (with
    its newlines) must not be there (the lab's journal check found it there once)."""
    secret = f"TOKEN={SECRET}\nB=2\n"
    encoded = base64.b64encode(secret.encode()).decode()  # as the action sends it
    entry = {"dest": str(tmp_path / "secret.env"), "secret_content": encoded, "mode": "0600"}
    arguments = tmp_path / "args.json"
    # _ansible_no_log false, as Ansible passes it for a task without no_log: the module logs.
    module_args = {"files": [entry], "_ansible_no_log": False}
    arguments.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": module_args}))
    module = str(REPO / "plugins" / "modules" / "mesh_files.py")
    done = subprocess.run(
        [sys.executable, "-c", LOG_PROBE.format(module=module), str(arguments)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO / "collections")},
    )  # fmt: skip
    assert '"changed": true' in done.stdout, done.stdout + done.stderr
    assert (tmp_path / "secret.env").read_text() == secret
    assert "LOGGED" in done.stderr and "Invoked with" in done.stderr  # it did log the run
    assert SECRET not in done.stderr and encoded not in done.stderr

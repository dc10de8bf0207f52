"""The playbooks as AWX / Ansible Automation Platform runs them: through `ansible-runner run`,
each job in a private data dir of its own (project, inventory, env/extravars, env/envvars),
writing on the controller only under the data dir a job points mesh_common_controller_data_dir
at (README "Running under ansible-runner / AWX"; the commands here are the README's).

On the fleet the session already deployed:
- a first job runs site.yml with an empty controller data dir: it builds the wheelhouse there
  and changes nothing else on the hosts;
- a second job, in another private data dir, same controller data dir, finds that wheelhouse,
  builds nothing and changes nothing (changed=0 everywhere);
- a third job runs backup.yml with mesh_backup_fetch: the copies land under <data dir>/backups.
Every job's artifacts hold its events (job_events/, playbook_on_stats) and none of its secrets.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.conftest import REPO, VENV_BIN
from tests.lab.fleet.conftest import Fleet

WHEELHOUSE_TASK = "Build the runtime wheel and its dependencies once per version and interpreter"
PACKAGES_TASK = "Fetch into the controller's package directory the packages of {what}"
# The roles that install Debian packages offline (mesh_common's offline_packages.yml), by group.
OFFLINE_PACKAGES = {"database": "PostgreSQL", "monitoring": "Prometheus and Alertmanager"}


def extravars_of(fleet: Fleet) -> dict[str, Any]:
    """fleet.extra_args (`-e @secrets.yml`, `-e name=value`) as one extravars mapping."""
    variables: dict[str, Any] = {}
    args = list(fleet.extra_args)
    for flag, value in zip(args[::2], args[1::2], strict=True):
        assert flag == "-e", f"unexpected argument {flag!r} in fleet.extra_args"
        if value.startswith("@"):
            variables.update(yaml.safe_load(Path(value[1:]).read_text()))
        else:
            name, _, text = value.partition("=")
            variables[name] = text
    return variables


class Job:
    """One ansible-runner job: its private data dir, how it went, its events."""

    def __init__(self, private: Path, ident: str, run: subprocess.CompletedProcess[str]) -> None:
        self.private, self.ident, self.run = private, ident, run
        self.artifacts = private / "artifacts" / ident
        self.events: list[dict[str, Any]] = [
            json.loads(path.read_text())
            for path in sorted((self.artifacts / "job_events").glob("*.json"))
        ]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event.get("event") == kind]

    @property
    def stats(self) -> dict[str, Any]:
        found = self.of("playbook_on_stats")
        assert len(found) == 1, f"{self.ident}: {len(found)} playbook_on_stats events"
        data: dict[str, Any] = found[0]["event_data"]
        return data

    def changed_tasks(self) -> list[str]:
        return sorted(
            {
                f"{event['event_data'].get('role', '')}: {event['event_data']['task']}"
                for event in self.of("runner_on_ok")
                if event["event_data"].get("res", {}).get("changed")
            }
        )

    def results(self, task: str) -> list[dict[str, Any]]:
        return [
            event["event_data"]["res"]
            for event in self.of("runner_on_ok")
            if event["event_data"].get("task") == task
        ]

    def failure(self) -> str:
        return f"{self.ident}: exit {self.run.returncode}\n{self.run.stdout[-5000:]}"


def runner_job(
    fleet: Fleet,
    private: Path,
    playbook: str,
    data_dir: Path,
    **extravars: Any,
) -> Job:
    """Lay out a private data dir as the README says and `ansible-runner run` it."""
    (private / "env").mkdir(parents=True)
    (private / "inventory").mkdir()
    (private / "project").symlink_to(REPO)  # AWX: the project's checkout
    (private / "inventory" / "hosts.yml").write_text(fleet.lab.inventory.read_text())
    secrets = private / "env" / "extravars"
    secrets.touch(mode=0o600)
    secrets.write_text(
        yaml.safe_dump(
            {
                **extravars_of(fleet),
                "mesh_common_controller_data_dir": str(data_dir),
                **extravars,
            }
        )
    )
    ident = Path(playbook).stem
    # The project's ansible.cfg (roles_path, ssh settings) is found as AWX finds it: in the
    # job's working directory, the project; nothing points ANSIBLE_CONFIG at the checkout.
    env = {key: value for key, value in os.environ.items() if key != "ANSIBLE_CONFIG"}
    started = time.monotonic()
    run = subprocess.run(
        [str(VENV_BIN / "ansible-runner"), "run", str(private), "-p", playbook, "--ident", ident],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    print(f"\nansible-runner job {private.name} ({playbook}): {time.monotonic() - started:.1f} s")
    return Job(private, ident, run)


def checkout_outputs() -> dict[str, float]:
    """What the playbooks would write under the checkout by default, with mtimes."""
    return {
        str(path.relative_to(REPO)): path.stat().st_mtime
        for top in (".cache", "backups", "reports")
        if (REPO / top).exists()
        for path in (REPO / top).rglob("*")
    }


@pytest.fixture(scope="module")
def jobs(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("runner")
    data_dir = folder / "controller-data"  # the persistent volume of an AWX deployment
    before = checkout_outputs()
    first = runner_job(fleet, folder / "job1", "playbooks/site.yml", data_dir)
    second = runner_job(fleet, folder / "job2", "playbooks/site.yml", data_dir)
    backup = runner_job(
        fleet, folder / "job3", "playbooks/backup.yml", data_dir, mesh_backup_fetch=True
    )
    return {
        "data_dir": data_dir,
        "first": first,
        "second": second,
        "backup": backup,
        "checkout": (before, checkout_outputs()),
    }


def test_site_runs_through_ansible_runner_and_its_artifacts_hold_the_events(
    jobs: dict[str, Any], fleet: Fleet
) -> None:
    for job in (jobs["first"], jobs["second"]):
        assert job.run.returncode == 0, job.failure()
        assert (job.artifacts / "rc").read_text().strip() == "0"
        assert (job.artifacts / "status").read_text().strip() == "successful"
        assert job.of("playbook_on_start"), job.ident
        plays = [event["event_data"]["play"] for event in job.of("playbook_on_play_start")]
        assert len(plays) >= 3, plays  # the registry, the agents, the load balancer
        stats = job.stats
        assert stats["failures"] == {} and stats["dark"] == {}, stats
        assert set(fleet.lab.hosts) <= set(stats["ok"]), stats["ok"]


def test_a_job_builds_the_wheelhouse_where_it_is_pointed_and_changes_nothing_else(
    jobs: dict[str, Any], fleet: Fleet
) -> None:
    first, data_dir = jobs["first"], jobs["data_dir"]
    assert first.run.returncode == 0, first.failure()
    # The controller's caches fill under the data dir (with a database or monitoring host, their
    # packages too); nothing changes on the hosts: the wheelhouse and the packed packages are the
    # same bytes.
    expected = [f"mesh_common: {WHEELHOUSE_TASK}"]
    for group, what in OFFLINE_PACKAGES.items():
        if not fleet.lab.groups.get(group):
            continue
        task = PACKAGES_TASK.format(what=what)
        expected.append(f"mesh_common: {task}")
        fetched = [result for result in first.results(task) if result.get("changed")]
        assert len(fetched) == 1, task
        assert Path(fetched[0]["archive"]).is_relative_to(data_dir / ".cache")
    assert first.changed_tasks() == sorted(expected)
    built = [result for result in first.results(WHEELHOUSE_TASK) if result.get("changed")]
    assert len(built) == 1
    assert Path(built[0]["archive"]).is_relative_to(data_dir / ".cache" / "wheelhouse")
    assert Path(built[0]["archive"]).is_file()


def test_a_second_job_finds_the_wheelhouse_and_changes_nothing(jobs: dict[str, Any]) -> None:
    first, second, data_dir = jobs["first"], jobs["second"], jobs["data_dir"]
    assert second.run.returncode == 0, second.failure()
    assert second.private != first.private
    found = second.results(WHEELHOUSE_TASK)
    assert found, "the second job never asked for the wheelhouse"
    assert [result["changed"] for result in found] == [False] * len(found)
    built = next(result for result in first.results(WHEELHOUSE_TASK) if result.get("changed"))
    assert {result["archive"] for result in found} == {built["archive"]}
    assert {result["build_id"] for result in found} == {built["build_id"]}
    changed = second.stats["changed"]
    assert sum(changed.values()) == 0, (changed, second.changed_tasks())
    assert second.changed_tasks() == []
    assert Path(built["archive"]).is_relative_to(data_dir)


def test_backup_through_ansible_runner_lands_under_the_data_dir(
    jobs: dict[str, Any], fleet: Fleet
) -> None:
    backup, data_dir = jobs["backup"], jobs["data_dir"]
    assert backup.run.returncode == 0, backup.failure()
    stats = backup.stats
    assert stats["failures"] == {} and stats["dark"] == {}, stats
    backed_up = fleet.lab.groups["agents"] + fleet.lab.groups.get("database", [])
    for host in backed_up:
        copies = sorted(path.name for path in (data_dir / "backups" / host).iterdir())
        assert copies, f"no copy of {host}'s backup under {data_dir / 'backups'}"
    fetched = [
        event["event_data"]["res"]["dest"]
        for event in backup.of("runner_on_ok")
        if event["event_data"]["task"].startswith("Fetch ")
    ]
    assert len(fetched) == len(backed_up)
    assert all(Path(dest).is_relative_to(data_dir / "backups") for dest in fetched), fetched


def test_the_jobs_artifacts_hold_no_secret(jobs: dict[str, Any], fleet: Fleet) -> None:
    secrets = [value for value in fleet.tokens.values() if len(value) >= 16]
    assert secrets
    for name in ("first", "second", "backup"):
        job = jobs[name]
        files = [path for path in job.artifacts.rglob("*") if path.is_file()]
        leaked = [
            str(path.relative_to(job.artifacts))
            for path in files
            if any(secret in path.read_text(errors="replace") for secret in secrets)
        ]
        assert leaked == [], f"{job.ident}: secrets in {leaked}"


def test_the_jobs_write_nothing_under_the_checkout(jobs: dict[str, Any]) -> None:
    """The project checkout (thrown away with an execution environment) got no wheelhouse, no
    backup, no report: everything went to the data dir. (The fact cache is the job's own,
    artifacts/<ident>/fact_cache: ansible-runner sets ANSIBLE_CACHE_PLUGIN_CONNECTION itself.)"""
    before, after = jobs["checkout"]
    assert after == before
    assert (jobs["data_dir"] / ".cache" / "wheelhouse").is_dir()
    assert (jobs["data_dir"] / "backups").is_dir()

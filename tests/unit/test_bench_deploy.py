"""How the deploy benchmark reads the machine's CPU load from /proc/stat."""

from bench.deploy import busy_share, cpu_times

# user nice system idle iowait irq softirq steal guest guest_nice
STAT = "cpu  100 0 50 800 50 0 0 0 30 0\ncpu0 50 0 25 400 25 0 0 0 15 0\n"


def test_idle_and_iowait_are_not_busy_and_guest_time_is_not_counted_twice() -> None:
    assert cpu_times(STAT) == (150, 1000)


def test_busy_share_is_over_the_interval_not_since_boot() -> None:
    later = "cpu  190 0 60 800 50 0 0 0 30 0\n"
    assert busy_share(cpu_times(STAT), cpu_times(later)) == 1.0
    assert busy_share(cpu_times(STAT), cpu_times(STAT)) == 0.0


def test_a_reading_of_this_machine_is_consistent() -> None:
    busy, total = cpu_times()
    assert 0 <= busy <= total


def test_the_cpu_between_two_task_starts_is_charged_to_the_first_task(tmp_path) -> None:
    import json

    from bench.deploy import cpu_profile

    samples = [
        {"task": "copy", "controller_us": 0, "hosts_us": {"lb1": 0, "agent1": 0, "agent2": 0}},
        {"task": "start", "controller_us": 500_000,
         "hosts_us": {"lb1": 100_000, "agent1": 1_000_000, "agent2": 3_000_000}},
        {"task": "copy", "controller_us": 600_000,
         "hosts_us": {"lb1": 100_000, "agent1": 1_500_000, "agent2": 3_500_000}},
        {"task": None, "controller_us": 800_000,
         "hosts_us": {"lb1": 100_000, "agent1": 1_500_000, "agent2": 3_500_000}},
    ]  # fmt: skip
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(sample) + "\n" for sample in samples))
    rows = {row["task"]: row for row in cpu_profile(path, ["agent1", "agent2"])}
    assert rows["copy"] == {
        "task": "copy", "controller_s": 0.7, "hosts_s": 4.1, "per_agent_host_s": 2.0,
    }  # fmt: skip
    assert rows["start"]["hosts_s"] == 1.0 and rows["start"]["controller_s"] == 0.1


def _size(agents: int, wall: float, machine: float, controller: float, hosts: float) -> dict:
    return {
        "agents": agents,
        "hosts": agents + 1,
        "fresh_deploy_s": {"median": wall},
        "fresh_deploy_machine_cpu_s": {"median": machine},
        "fresh_deploy_controller_cpu_s": {"median": controller},
        "fresh_deploy_hosts_cpu_s": {"median": hosts},
        "fresh_deploy_cpu_busy": {"median": 0.5},
        "second_run_s": {"median": wall / 2},
        "cpu_by_task": [
            {"task": "t", "controller_s": controller, "hosts_s": hosts, "per_agent_host_s": 1.0}
        ],
    }


def test_per_added_agent_is_the_slope_from_the_smallest_size() -> None:
    from bench.deploy import scaling, task_profile

    sizes = [_size(1, 30, 50, 10, 20), _size(3, 40, 66, 14, 32), _size(12, 62, 138, 32, 86)]
    verdict = scaling(sizes)
    assert verdict["cpu_s_per_added_agent_machine"] == {"3": 8.0, "12": 8.0}
    assert verdict["cpu_s_per_added_agent_deploy"] == {"3": 8.0, "12": 8.0}
    assert verdict["ratio"] == 2.07 and verdict["met"] is False  # wall over 2x
    profile = task_profile(sizes)
    assert profile["per_added_agent_controller_s"] == 2.0
    assert profile["per_added_agent_hosts_s"] == 6.0

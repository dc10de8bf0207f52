"""The pure parts of the upgrade benchmark, on synthetic timelines, calls and playbook output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.upgrade import (
    ANALYSIS_TASK,
    BLAST_RADIUS_TARGET,
    CYCLE_WITH_ANALYSIS_TARGET_S,
    DRAIN_TASK,
    ENABLE_TASK,
    HostCycle,
    Run,
    Served,
    TaskTime,
    analysis_verdicts,
    bad_run_summary,
    blast_radius,
    failure_message,
    host_cycles,
    read_timeline,
    stopped_on_first_host,
    summarise,
    summarise_bad,
)
from tests.lab.fleet.loadgen import Sample

AGENTS = ["agent1", "agent2", "agent3"]
SWITCH = "Switch the host to release 1.0.901"
FULL_WEIGHT = "Give the agent its full weight back"


def healthy_cycle(host: str, at: float, analysis_s: float = 10.5) -> list[TaskTime]:
    """drain 0-0.5, switch 0.6-3.6, enable 3.7-4.0, analysis 4.1-(4.1+analysis_s), weight."""
    end = at + 4.1 + analysis_s
    return [
        TaskTime("Back up config and state with the old release", host, at - 1.0, at - 0.1),
        TaskTime(DRAIN_TASK, host, at, at + 0.5),
        TaskTime(SWITCH, host, at + 0.6, at + 3.6),
        TaskTime(ENABLE_TASK, host, at + 3.7, at + 4.0),
        TaskTime(
            f"{ANALYSIS_TASK} against the hosts still on the old release", host, at + 4.1, end
        ),
        TaskTime(FULL_WEIGHT, host, end + 0.1, end + 0.3),
    ]


def rolled_back_cycle(host: str, at: float) -> list[TaskTime]:
    """The analysis fails 3 s after the enable; the rescue drains, switches back, enables."""
    return [
        TaskTime(DRAIN_TASK, host, at, at + 0.5),
        TaskTime("Switch the host to release 1.0.902", host, at + 0.6, at + 3.6),
        TaskTime(ENABLE_TASK, host, at + 3.7, at + 4.0),
        TaskTime(ANALYSIS_TASK + " against the hosts", host, at + 4.1, at + 7.0, "failed"),
        TaskTime("Remember why the cycle failed", host, at + 7.1, at + 7.2),
        TaskTime(DRAIN_TASK, host, at + 7.3, at + 7.8),
        TaskTime("Switch the host to release 1.0.901", host, at + 7.9, at + 10.9),
        TaskTime(ENABLE_TASK, host, at + 11.0, at + 11.4),
        TaskTime("Fail the host, so that no further batch starts", host, at + 11.5, at + 11.6),
    ]


def test_a_healthy_cycle_runs_from_the_drain_to_the_end_of_the_analysis() -> None:
    tasks = healthy_cycle("agent1", 100.0) + healthy_cycle("agent2", 120.0, analysis_s=9.0)
    cycles = host_cycles(tasks, AGENTS)
    assert set(cycles) == {"agent1", "agent2"}  # agent3 has no cycle in this timeline
    first = cycles["agent1"]
    assert first.seconds == pytest.approx(4.0)  # drain start to enabled and UP
    assert first.seconds_with_analysis == pytest.approx(14.6)
    assert first.end == pytest.approx(114.6)
    assert first.restart == (100.6, 103.6)
    assert first.analysis == (104.1, 114.6)
    assert not first.analysis_failed
    assert first.rollback is None
    assert cycles["agent2"].seconds_with_analysis == pytest.approx(13.1)


def test_a_cycle_without_analysis_ends_at_the_enable() -> None:
    tasks = [task for task in healthy_cycle("agent1", 10.0) if ANALYSIS_TASK not in task.task]
    cycle = host_cycles(tasks, AGENTS)["agent1"]
    assert cycle.seconds_with_analysis is None
    assert cycle.detection_seconds is None
    assert cycle.end == cycle.enabled_end == pytest.approx(14.0)


def test_a_rolled_back_cycle_keeps_the_way_forward_apart_from_the_rescue() -> None:
    cycle = host_cycles(rolled_back_cycle("agent1", 50.0), AGENTS)["agent1"]
    assert cycle.drain_start == 50.0
    assert cycle.enabled_end == pytest.approx(54.0)  # the first enable, not the rescue's
    assert cycle.restart == (50.6, 53.6)
    assert cycle.analysis == (54.1, 57.0)
    assert cycle.analysis_failed
    assert cycle.detection_seconds == pytest.approx(3.0)  # enabled to the analysis' end
    assert cycle.rollback == (57.3, 61.4)
    assert cycle.rollback_drained == pytest.approx(57.8)


def test_the_timeline_file_drops_skipped_tasks_and_role_prefixes(tmp_path: Path) -> None:
    path = tmp_path / "timeline.jsonl"
    lines = [
        {"task": f"mesh_common : {DRAIN_TASK}", "host": "agent1", "start": 1, "end": 2,
         "status": "changed"},
        {"task": ANALYSIS_TASK, "host": "agent1", "start": 3, "end": 4, "status": "failed"},
        {"task": "Skipped", "host": "agent1", "start": 5, "end": 5, "status": "skipped"},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert read_timeline(path) == [
        TaskTime(DRAIN_TASK, "agent1", 1, 2, "changed"),
        TaskTime(ANALYSIS_TASK, "agent1", 3, 4, "failed"),
    ]
    assert read_timeline(tmp_path / "missing.jsonl") == []


def test_blast_radius_counts_the_calls_while_the_playbook_ran() -> None:
    calls = [(float(second), True) for second in range(100)]  # one call a second, 0..99
    calls += [(30.5, False), (31.5, False), (95.5, False)]  # two during the run, one after it
    figures = blast_radius(calls, started=10.0, ended=90.0, exposure=(29.0, 33.0))
    assert figures["calls"] == 81 + 2  # 10..90 and the two failed ones
    assert figures["failed_calls"] == 2
    assert figures["failed_ratio"] == round(2 / 83, 4)
    assert figures["failed_percent"] == round(200 / 83, 2)
    assert figures["failed_calls_outside_run"] == 1
    assert figures["exposure_s"] == 4.0
    assert figures["exposure_calls"] == 5 + 2
    assert figures["exposure_failed_calls"] == 2


def test_blast_radius_of_no_calls_is_zero_not_an_error() -> None:
    figures = blast_radius([], 0.0, 10.0)
    assert figures["calls"] == 0
    assert figures["failed_ratio"] == 0.0
    assert "exposure_calls" not in figures


def served(*versions: str, moved: str | None = None) -> dict[str, Served]:
    return {
        name: Served(version, 1000.0 + (30.0 if name == moved else 0.0))
        for name, version in zip(AGENTS, versions, strict=True)
    }


def test_a_bad_release_stopped_on_the_canary_leaves_the_others_untouched() -> None:
    before = served("1.0.901", "1.0.901", "1.0.901")
    cycles = host_cycles(rolled_back_cycle("agent1", 50.0), AGENTS)
    stop = stopped_on_first_host(2, AGENTS, cycles, before, served("1.0.901", "1.0.901", "1.0.901"))
    assert stop["stopped"] is True
    assert stop["others_untouched"] is True
    assert stop["canary"] == "agent1"
    assert stop["canary_back_on"] == "1.0.901"
    assert stop["hosts_cycled"] == ["agent1"]


def test_a_run_that_passed_restarted_or_changed_another_host_did_not_stop() -> None:
    before = served("1.0.901", "1.0.901", "1.0.901")
    after = served("1.0.901", "1.0.901", "1.0.901")
    cycles = host_cycles(rolled_back_cycle("agent1", 50.0), AGENTS)
    assert stopped_on_first_host(0, AGENTS, cycles, before, after)["stopped"] is False
    restarted = stopped_on_first_host(2, AGENTS, cycles, before, {**after, **served(
        "1.0.901", "1.0.901", "1.0.901", moved="agent3")})  # fmt: skip
    assert restarted["others_restarted"] == ["agent3"]
    assert restarted["stopped"] is False
    changed = stopped_on_first_host(
        2, AGENTS, cycles, before, served("1.0.901", "1.0.902", "1.0.901")
    )
    assert changed["versions_changed"] == ["agent2"]
    assert changed["others_untouched"] is False
    both = host_cycles(rolled_back_cycle("agent1", 50.0) + healthy_cycle("agent2", 70.0), AGENTS)
    assert stopped_on_first_host(2, AGENTS, both, before, after)["hosts_cycled"] == [
        "agent1",
        "agent2",
    ]
    assert stopped_on_first_host(2, AGENTS, both, before, after)["stopped"] is False


FAILED_OUTPUT = """
TASK [Fail the host, so that no further batch starts] ***
fatal: [agent1]: FAILED! => {"changed": false, "msg": "agent1: upgrade to 1.0.902 failed at \
step 'Judge the release by its traffic against the hosts still on the old release': \
mcp-mesh-sdk release: analysis failed: canary server-error ratio 31.0% (9 of 29 calls) \
against 0.0% on the baseline; back on 1.0.901, healthy and enabled again"}
NO MORE HOSTS LEFT
"""


def test_the_failure_message_names_host_step_cause_and_release_back_on() -> None:
    failure = failure_message(FAILED_OUTPUT)
    assert failure is not None
    assert failure["host"] == "agent1"
    assert failure["release"] == "1.0.902"
    assert failure["step"].startswith(ANALYSIS_TASK)
    assert "server-error ratio" in failure["cause"]
    assert failure["cause"].endswith("on the baseline")
    assert failure["back_on"] == "1.0.901"
    assert failure_message("PLAY RECAP\nagent1 : ok=3 failed=0\n") is None


SUMMARY_OUTPUT = """
TASK [Show the summary] ***
ok: [lb1] => {
    "msg": [
        "HOST    CYCLE  SMOKE        ANALYSIS  CALLS  SERVER ERR  P95 MS (BASE)",
        "agent1  15.1s  passed 0.9s  pass      31     0 (0%)      12.0 (11.0)",
        "agent2  14.8s  passed 0.8s  pass*     7      0 (0%)      10.0 (9.0)",
        "lb1     6.0s   passed 0.7s  -         -      -           -",
        "* inconclusive: too few calls to judge; the outcome is mesh_upgrade_inconclusive's"
    ]
}

PLAY RECAP *********
"""


def test_the_analysis_verdict_of_each_host_is_read_from_the_summary_table() -> None:
    assert analysis_verdicts(SUMMARY_OUTPUT) == {"agent1": "pass", "agent2": "pass*", "lb1": "-"}
    assert analysis_verdicts("no table here") == {}


def make_run(cycles: list[TaskTime], failed_at: list[float], started: float = 0.0) -> Run:
    samples = [
        (float(at), Sample(at, 0.01, at not in failed_at, "write_file on agent1"))
        for at in [*range(0, 60), *failed_at]
    ]
    return Run(
        "1.0.901", "1.0.902", started, 55.0, cycles, host_cycles(cycles, AGENTS), samples, 25.0
    )


def test_the_healthy_summary_judges_the_cycle_with_analysis_against_five_s_plus_window() -> None:
    tasks = [
        *healthy_cycle("agent1", 5.0),
        *healthy_cycle("agent2", 21.0, analysis_s=10.0),
        *healthy_cycle("agent3", 37.0),
    ]
    runs = [make_run(tasks, []) for _ in range(3)]
    summary = summarise(runs, AGENTS)
    assert summary["per_host_cycle_s"]["agent1"] == {"median": 4.0, "runs": [4.0, 4.0, 4.0]}
    assert summary["per_host_cycle_with_analysis_s"]["agent2"]["median"] == 14.1
    section = summary["cycle_with_analysis"]
    assert section["worst_host_median_s"] == 14.6
    assert section["target"] == CYCLE_WITH_ANALYSIS_TARGET_S == 15.0
    assert section["met"] is True
    assert summary["cycle"]["met"] is True
    assert summary["no_failed_calls"]["met"] is True
    slow = [make_run([*healthy_cycle("agent1", 5.0, analysis_s=11.5), *tasks[6:]], [])] * 3
    assert summarise(slow, AGENTS)["cycle_with_analysis"]["met"] is False
    failing = [make_run(tasks, [30.5])] * 3
    assert summarise(failing, AGENTS)["no_failed_calls"] == {
        "failed_calls": 3,
        "target": 0,
        "met": False,
    }


def test_a_host_missing_from_a_run_fails_the_cycle_verdict() -> None:
    tasks = [*healthy_cycle("agent1", 5.0), *healthy_cycle("agent2", 21.0)]
    summary = summarise([make_run(tasks, [])] * 3, AGENTS)
    assert summary["cycle_with_analysis"]["met"] is False


def test_the_bad_release_summary_gives_blast_radius_detection_and_the_stop() -> None:
    run = make_run(rolled_back_cycle("agent1", 20.0), [24.5, 25.5])
    before = after = served("1.0.901", "1.0.901", "1.0.901")
    run.returncode = 2
    run.extra["stop"] = stopped_on_first_host(2, AGENTS, run.cycles, before, after)
    summary = bad_run_summary(run, "agent1")
    assert summary["time_to_detection_s"] == 3.0
    assert summary["analysis_failed"] is True
    assert summary["rollback_s"] == 4.1
    assert summary["blast_radius"]["failed_calls"] == 2
    assert summary["blast_radius"]["calls"] == 56 + 2  # calls at 0..55 and the failed two
    assert summary["blast_radius"]["exposure_failed_calls"] == 2
    total = summarise_bad([summary, summary, summary], [25.0, 24.8, 25.1])
    assert total["blast_radius"]["worst_failed_percent"] == round(200 / 58, 2)
    assert total["blast_radius"]["target"] == 100 * BLAST_RADIUS_TARGET
    assert total["blast_radius"]["met"] is False  # 3.4 % > 2 %
    assert total["stopped_on_first_host"] == {
        "runs_stopped": 3,
        "runs": 3,
        "per_run": [True, True, True],
        "met": True,
    }
    assert total["time_to_detection_s"] == {"median": 3.0, "runs": [3.0, 3.0, 3.0]}
    assert total["bad_load"]["met"] is True


def test_a_small_blast_radius_is_met_and_no_bad_run_is_not() -> None:
    summary = {
        "blast_radius": {"failed_ratio": 0.012, "failed_percent": 1.2, "failed_calls": 12,
                         "calls": 1000},
        "time_to_detection_s": None,
        "stop": {"stopped": True},
    }  # fmt: skip
    assert summarise_bad([summary], [25.0])["blast_radius"]["met"] is True
    nothing = summarise_bad([], [])
    assert nothing["blast_radius"]["met"] is False
    assert nothing["stopped_on_first_host"]["met"] is False


def test_host_cycle_properties_of_a_plain_cycle() -> None:
    cycle = HostCycle("agent1", drain_start=1.0, enabled_end=5.0, analysis=(5.5, 15.0))
    assert cycle.seconds == 4.0
    assert cycle.seconds_with_analysis == 14.0
    assert cycle.detection_seconds == 10.0

import json
from pathlib import Path

import pytest

import bench.__main__ as suite


@pytest.fixture
def suite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "suite.json"
    monkeypatch.setattr(suite, "SUITE", path)
    return path


def test_a_suite_within_the_bound_is_met(suite_file: Path) -> None:
    suite.record_suite({"agent": 54.0, "deploy": 767.0}, [], 1153.0)
    bound = json.loads(suite_file.read_text())["bound"]
    assert bound == {"total_s": 1153.0, "target_s": 1200, "met": True}


def test_a_slow_suite_or_a_failed_benchmark_is_not_met(suite_file: Path) -> None:
    suite.record_suite({"agent": 54.0}, [], 1275.0)
    assert json.loads(suite_file.read_text())["bound"]["met"] is False
    suite.record_suite({"agent": 54.0}, ["restore"], 300.0)
    document = json.loads(suite_file.read_text())
    assert document["bound"]["met"] is False
    assert document["failed"] == "restore"

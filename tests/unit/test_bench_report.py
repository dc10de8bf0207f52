from bench.report import figure_rows, render, verdict_rows


def test_every_section_with_a_verdict_becomes_a_row_with_its_numbers() -> None:
    document = {
        "benchmark": "x",
        "cold_start": {"median": 0.4, "target": 1.0, "met": True, "runs": [0.4, 0.5]},
        "results": {"create": {"ratio_to_baseline": 0.5, "target_met": False}},
    }
    rows = verdict_rows(document)
    assert rows == [
        ("cold_start", {"median": 0.4, "target": 1.0}, True),
        ("results/create", {"ratio_to_baseline": 0.5}, False),
    ]


def test_report_shows_unmet_targets_plainly() -> None:
    text = render({"backup": {"results": {"create": {"ratio": 0.5, "target_met": False}}}})
    assert "| results/create | ratio 0.5 | **no** |" in text
    assert "CPUs" in text


def test_every_figure_is_listed_even_without_a_verdict() -> None:
    document = {"second_run_s": {"project": {"median": 107.7, "runs": [107.7]}}, "hosts": 13}
    assert figure_rows(document) == [("second_run_s.project.median", 107.7), ("hosts", 13)]
    assert "| second_run_s.project.median | 107.7 |" in render({"tuning": document})


def test_a_result_table_is_shown_as_a_table_not_as_loose_figures() -> None:
    table = {"title": "requests/s", "columns": ["endpoint", "rps"], "rows": [["/health", 4686]]}
    text = render({"agent": {"tables": [table], "hosts": 1}})
    assert "| endpoint | rps |\n| --- | --- |\n| /health | 4686 |" in text
    assert "tables" not in text
    assert "| hosts | 1 |" in text


def test_a_decision_is_shown_as_a_sentence() -> None:
    text = render({"tuning": {"decision": "mitogen is measured, not adopted: reasons"}})
    assert "- decision: mitogen is measured, not adopted: reasons" in text


def test_a_title_heads_the_section_and_a_reading_is_a_sentence() -> None:
    text = render({"tls": {"title": "TLS", "reading": "TLS costs little with keep-alive."}})
    assert "## TLS\n" in text and "## tls" not in text
    assert "- reading: TLS costs little with keep-alive." in text
    assert "| title |" not in text

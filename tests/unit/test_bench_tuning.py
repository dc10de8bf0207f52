"""The tuning benchmark's summary of the configurations it compared."""

from bench.tuning import configurations_table


def comparison(mitogen: dict[str, object]) -> dict[str, object]:
    seconds = {"project": 40.0, "defaults": 60.0} | (
        {"mitogen": 20.0} if "works" in str(mitogen) else {}
    )
    return {
        "hosts": 7,
        "second_run_s": {
            name: {"median": value, "runs": [value]} for name, value in seconds.items()
        },
        "changed": {name: [0] for name in seconds},
        "mitogen": mitogen,
    }


def test_only_the_project_configuration_is_adopted_and_ratios_are_to_it() -> None:
    table = configurations_table(comparison({"status": "works"}))
    assert table["rows"] == [
        ["project", 40.0, 1.0, 0, "yes"],
        ["defaults", 60.0, 1.5, 0, "no"],
        ["mitogen", 20.0, 0.5, 0, "no"],
    ]


def test_a_mitogen_that_could_not_run_still_gets_a_row_with_the_reason() -> None:
    table = configurations_table(comparison({"status": "not supported: cannot install: offline"}))
    assert table["rows"][-1] == [
        "mitogen",
        "-",
        "-",
        "-",
        "no (not supported: cannot install: offline)",
    ]

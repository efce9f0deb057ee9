"""The GX suites come from schemas/*.yml: one expectation per constraint, none hand-copied."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
import yaml

from pipelines.contracts import TABLES, load_contract
from pipelines.validation.checkpoint import DistinctValues, Validator
from pipelines.validation.suites import table_suite
from tests.support import SCHEMAS_DIR


@pytest.fixture(autouse=True)
def gx_context():
    """GX builds suites only inside an active context."""
    import great_expectations as gx

    return gx.get_context(mode="ephemeral")


def constraints_in_yaml(table: str) -> set[tuple[str, str]]:
    """(column, rule) pairs read straight from the YAML, by a second route than contracts.py."""
    raw = yaml.safe_load((SCHEMAS_DIR / f"{table}.yml").read_text(encoding="utf-8"))
    found = set()
    type_rule = {"integer": "integer", "boolean": "boolean", "date": "date"}
    for column in raw["columns"]:
        name = column["name"]
        if column.get("required"):
            found.add((name, "required"))
        if column["type"] in type_rule:
            found.add((name, type_rule[column["type"]]))
        if column["type"] == "date":
            found.add((name, "date_range"))
        if column.get("not_after_load_date"):
            found.add((name, "not_after_load_date"))
        if column.get("allowed"):
            found.add((name, "allowed"))
        if "min" in column or "max" in column:
            found.add((name, "range"))
    return found


@pytest.mark.parametrize("table", TABLES)
def test_suite_has_one_expectation_per_contract_constraint(table: str):
    suite = table_suite(load_contract(table), date(2025, 6, 1))
    pairs = [(e.meta["column"], e.meta["rule"]) for e in suite.expectations]
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == constraints_in_yaml(table)


def test_intake_suite_size_worked_out_by_hand():
    # 5 required + 3 integers + 17 booleans + 1 date + 1 date range + 1 not-after
    # + 3 allowed + 3 ranges.
    assert len(table_suite(load_contract("intake"), date(2025, 6, 1)).expectations) == 34


def test_checkpoint_names_the_failing_values_and_every_expectation_it_evaluated():
    contract = load_contract("intake")
    rows = pa.table(
        {
            "encounter_id": ["E1", "E2", None],
            "patient_id": ["P1", "P2", "P3"],
            "encounter_date": ["2024-01-02", "2024-02-30", "2024-01-02"],
            "age_years": ["55", "x", "55"],
            "sex": ["F", "F", "Q"],
        }
    )
    distinct = DistinctValues(contract)
    distinct.add(rows.slice(0, 2))
    distinct.add(rows.slice(2))
    result = Validator(date(2025, 6, 1)).validate(contract, distinct)
    found = {(f.column, f.rule): f.values.to_pylist() for f in result.failures}
    assert found == {
        ("encounter_id", "required"): [None],
        ("encounter_date", "date"): ["2024-02-30"],
        ("age_years", "integer"): ["x"],
        ("sex", "allowed"): ["Q"],
    }
    # Every expectation of the suite, in its order, with GX's verdict and its arguments
    # as plain JSON values (the batch id left out, dates in ISO).
    assert len(result.checked) == 34
    assert {(c.column, c.rule) for c in result.checked if not c.success} == set(found)
    sex = next(c for c in result.checked if (c.column, c.rule) == ("sex", "allowed"))
    assert sex.expectation == "expect_column_values_to_be_in_set"
    assert sex.kwargs == {"column": "sex", "value_set": ["F", "M", "X", "U"]}
    after = next(c for c in result.checked if c.rule == "not_after_load_date")
    assert after.kwargs == {"column": "encounter_date__date", "max_value": "2025-06-01"}
    assert after.success


def test_a_file_without_rows_has_nothing_evaluated():
    contract = load_contract("intake")
    result = Validator(date(2025, 6, 1)).validate(contract, DistinctValues(contract))
    assert (result.checked, result.failures) == ([], [])


def test_validators_of_one_process_keep_their_suites_apart():
    # A long-lived process (the scheduled server, the test session) holds one validator
    # per day and date bounds. GX keeps one "current" context per process, the newest; a
    # suite being built resolves through it, and it used to add its expectations to
    # that context's stored suite of the same name: the newer validator's suite then
    # held every expectation twice and its next run failed ("ExpectationSuite
    # 'intake' has changed since it has last been saved").
    contract = load_contract("intake")
    distinct = DistinctValues(contract)
    distinct.add(
        pa.table(
            {
                "encounter_id": ["E1"],
                "patient_id": ["P1"],
                "encounter_date": ["2024-01-02"],
                "age_years": ["55"],
                "sex": ["Q"],
            }
        )
    )
    older = Validator(date(2025, 6, 1))
    newer = Validator(date(2025, 6, 2))  # GX's current context from here on
    assert [f.column for f in newer.validate(contract, distinct).failures] == ["sex"]
    # the older validator builds its suite and Checkpoint only now, on first use
    assert [f.column for f in older.validate(contract, distinct).failures] == ["sex"]
    expected = len(table_suite(contract, date(2025, 6, 2)).expectations)
    for validator in (older, newer):
        stored = validator.context.suites.get(contract.table)
        assert len(stored.expectations) == expected
    assert [f.column for f in newer.validate(contract, distinct).failures] == ["sex"]

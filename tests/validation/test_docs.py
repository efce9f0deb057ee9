"""The validation pages: every count is the run's, they open offline, and they keep history.

The inputs hold bad values placed by hand, one rule each (one row breaks two), so every
count a page shows is worked out here before the run, and checked against the
quarantine table the run wrote as well.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pytest

from pipelines.config import load_settings
from pipelines.errors import UserError
from pipelines.ingest.stage import LOADED, REJECTED, UNCHANGED, ingest_directory
from pipelines.published import published_path
from pipelines.report import write_report
from pipelines.validation.docs import (
    INDEX_FILE,
    RUNS_DIR,
    default_docs_dir,
    docs_links,
    share_text,
    write_index,
)
from pipelines.warehouse import create_schemas
from tests.support import SAMPLE_DIR
from tests.support.browser import OFFLINE, browse, page_requests

LOAD_DATE = date(2025, 6, 1)
INTAKE_HEADER = "encounter_id,patient_id,encounter_date,age_years,sex,fever"
N_INTAKE = 120


def intake_rows(n: int = N_INTAKE) -> list[list[str]]:
    """n valid rows: patients P00-P49, dates in January 2024, ages 20-79."""
    return [
        [
            f"E{i:03d}",
            f"P{i % 50:02d}",
            f"2024-01-{i % 28 + 1:02d}",
            str(20 + i % 60),
            "F" if i % 2 else "M",
            "true" if i % 3 == 0 else "false",
        ]
        for i in range(1, n + 1)
    ]


def bad_intake() -> str:
    """120 rows, 8 of them bad (row numbers are the encounter numbers, 1-based)."""
    rows = intake_rows()
    rows[10 - 1][4] = "Q"  # sex: allowed
    rows[20 - 1][4:6] = ["Q", "maybe"]  # sex: allowed, and fever: boolean (one row, two rules)
    rows[30 - 1][3] = "abc"  # age_years: integer
    rows[40 - 1][3] = "-5"  # age_years: range (0-90)
    rows[50 - 1][2] = "2024-02-30"  # encounter_date: date
    rows[60 - 1][1] = ""  # patient_id: required
    rows[70 - 1][0] = "E001"  # encounter_id: unique (row 1 has it; checked in DuckDB)
    rows[80 - 1].append("extra")  # seven fields under a header of six: field_count
    return INTAKE_HEADER + "\n" + "".join(",".join(r) + "\n" for r in rows)


# What the run must count, worked out from the placements above.
BAD_INTAKE_RULES = {
    ("sex", "allowed"): 2,
    ("fever", "boolean"): 1,
    ("age_years", "integer"): 1,
    ("age_years", "range"): 1,
    ("encounter_date", "date"): 1,
    ("patient_id", "required"): 1,
    ("encounter_id", "unique"): 1,
    ("", "field_count"): 1,
}
BAD_INTAKE_ROWS = 8
# Two of five referrals name patients no intake row has.
REFERRALS = (
    "referral_id,patient_id,referral_date,referral_type\n"
    "R1,P01,2024-02-01,imaging\n"
    "R2,P02,2024-02-01,imaging\n"
    "R3,P998,2024-02-01,imaging\n"
    "R4,P03,2024-02-01,biopsy\n"
    "R5,P999,2024-02-01,imaging\n"
)


def write_inputs(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def run_ingest(con, input_dir: Path, run_id: str, docs: Path, keep: int = 30):
    return ingest_directory(
        con, input_dir, run_id, load_date=LOAD_DATE, docs_dir=docs, docs_keep=keep
    )


# ------------------------------------------------------------------ reading a page


class Page(HTMLParser):
    """What the tests read of a page: the text of elements with an id, and the rows of
    the tables of rules and of validations (their data- attributes, cells and link)."""

    ROW_CLASSES = ("rule", "broken-rule", "validation")

    def __init__(self, html: str) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.rows: dict[str, list[dict]] = {c: [] for c in self.ROW_CLASSES}
        self._open: list[tuple[str, str | None]] = []  # (tag, id)
        self._texts: dict[str, list[str]] = {}
        self._row: dict | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr":
            kind = next((c for c in (a.get("class") or "").split() if c in self.ROW_CLASSES), None)
            if kind:
                self._row = {"kind": kind, "attrs": a, "cells": [], "href": None}
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "a" and self._row is not None:
            self._row["href"] = a.get("href")
        if tag not in ("meta", "br", "wbr", "input", "img", "link"):
            self._open.append((tag, a.get("id")))
            if a.get("id"):
                self._texts[a["id"]] = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row["cells"].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows[self._row["kind"]].append(self._row)
            self._row = None
        while self._open:
            open_tag, open_id = self._open.pop()
            if open_id:
                self.by_id[open_id] = " ".join("".join(self._texts.pop(open_id)).split())
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for _, open_id in self._open:
            if open_id:
                self._texts[open_id].append(data)

    def count(self, element_id: str) -> int:
        return int(self.by_id[element_id].replace(",", ""))

    def rules(self, kind: str = "rule") -> dict[tuple[str, str], dict]:
        """(column, rule) -> the row's cells, for the table of every rule applied."""
        return {(r["attrs"]["data-column"], r["attrs"]["data-rule"]): r for r in self.rows[kind]}


def read_page(path: Path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


RULE_COLUMNS = (
    "column",
    "rule",
    "checked_by",
    "expectation",
    "arguments",
    "result",
    "rows",
    "share",
    "values",
)


def rule_cells(row: dict) -> dict[str, str]:
    return dict(zip(RULE_COLUMNS, row["cells"], strict=True))


def quarantine_counts(con, table: str, run_id: str) -> dict[tuple[str, str], int]:
    rows = con.execute(
        f"SELECT coalesce(column_name, ''), rule, count(DISTINCT source_row) "
        f"FROM quarantine.{table} WHERE run_id = ? GROUP BY ALL",
        [run_id],
    ).fetchall()
    return {(column, rule): n for column, rule, n in rows}


# ------------------------------------------------------------------ the counts


def test_page_counts_are_the_hand_placed_bad_rows_and_the_quarantines(tmp_path: Path):
    input_dir = write_inputs(
        tmp_path / "in", {"intake.csv": bad_intake(), "referrals.csv": REFERRALS}
    )
    docs = tmp_path / "docs"
    con = duckdb.connect()
    create_schemas(con)
    summary = run_ingest(con, input_dir, "run-1", docs)
    intake = next(f for f in summary.files if f.table == "intake")

    page = read_page(docs / RUNS_DIR / "run-1" / "intake.csv.html")
    # The reconciliation: hand-known, and the file's report (which the loader checked).
    assert (page.count("rows-read"), page.count("rows-accepted")) == (120, 120 - BAD_INTAKE_ROWS)
    assert page.count("rows-quarantined") == BAD_INTAKE_ROWS
    assert (intake.rows_read, intake.accepted, intake.quarantined) == (120, 112, 8)
    # Rows per rule: hand-known, the quarantine table's, the file report's.
    shown = {key: int(rule_cells(r)["rows"]) for key, r in page.rules().items()}
    broken = {key: n for key, n in shown.items() if n}
    assert broken == BAD_INTAKE_RULES
    assert broken == quarantine_counts(con, "intake", "run-1")
    assert {f"{rule}({column})" if column else rule: n for (column, rule), n in broken.items()} == (
        intake.rules
    )
    assert {key: int(r["cells"][3]) for key, r in page.rules("broken-rule").items()} == broken
    # Every expectation of the suite (34) and the one uniqueness rule DuckDB checks, each
    # with its verdict: failed exactly where rows broke it.
    rules = {key: rule_cells(r) for key, r in page.rules().items()}
    assert sum(r["checked_by"] == "Great Expectations" for r in rules.values()) == 34
    assert [key for key, r in rules.items() if r["checked_by"] == "DuckDB"] == [
        ("encounter_id", "unique")
    ]
    assert all(r["result"] == ("fail" if shown[key] else "pass") for key, r in rules.items())
    sex = rules[("sex", "allowed")]
    assert sex["expectation"] == "expect_column_values_to_be_in_set"
    assert sex["arguments"] == 'column="sex", value_set=["F", "M", "X", "U"]'
    assert sex["share"] == "1.67%"  # 2 of 120
    assert rules[("age_years", "range")]["share"] == "0.83%"  # 1 of 120
    assert rules[("smoking_status", "allowed")]["share"] == "0.00%"
    # A few of the failing values, as read.
    assert sex["values"] == "Q"
    assert rules[("age_years", "integer")]["values"] == "abc"
    assert rules[("encounter_date", "date")]["values"] == "2024-02-30"
    assert rules[("patient_id", "required")]["values"] == "NULL (no value)"
    assert rules[("encounter_id", "unique")]["values"] == "E001"
    # GX's counts of its distinct-values frame are nowhere on the page.
    html = (docs / RUNS_DIR / "run-1" / "intake.csv.html").read_text(encoding="utf-8")
    assert "unexpected" not in html.lower() and "element_count" not in html

    referrals = read_page(docs / RUNS_DIR / "run-1" / "referrals.csv.html")
    assert [referrals.count(i) for i in ("rows-read", "rows-accepted", "rows-quarantined")] == [
        5,
        3,
        2,
    ]
    known = rule_cells(referrals.rules()[("patient_id", "known_in_intake")])
    assert (known["checked_by"], known["rows"], known["result"]) == ("DuckDB", "2", "fail")
    assert known["values"] == "P998 P999"
    assert quarantine_counts(con, "referrals", "run-1") == {("patient_id", "known_in_intake"): 2}


def test_a_rejected_file_has_its_page_and_an_unchanged_one_none(tmp_path: Path):
    input_dir = write_inputs(
        tmp_path / "in",
        {
            "intake.csv": INTAKE_HEADER + "\nE1,P1,2024-01-02,55,F,true\n",
            "referrals.csv": "referral_id,patient_id,referral_date,referral_type,phone\n"
            "R1,P1,2024-01-05,imaging,555\n",
        },
    )
    docs = tmp_path / "docs"
    con = duckdb.connect()
    create_schemas(con)
    first = run_ingest(con, input_dir, "run-1", docs)
    assert [f.status for f in first.files] == [LOADED, REJECTED]
    rejected = read_page(docs / RUNS_DIR / "run-1" / "referrals.csv.html")
    assert "column(s) phone hold direct identifiers" in rejected.by_id["rejected"]
    assert rejected.by_id["result"] == "fail: the file was rejected"
    assert rejected.rows["rule"] == []
    # Nothing changed: the second run validated nothing, and writes no page.
    second = run_ingest(con, input_dir, "run-2", docs)
    assert [f.status for f in second.files] == [UNCHANGED, REJECTED]
    index = read_page(docs / INDEX_FILE)
    listed = [(r["attrs"]["data-run"], r["attrs"]["data-file"]) for r in index.rows["validation"]]
    assert listed == [
        ("run-2", "referrals.csv"),
        ("run-1", "intake.csv"),
        ("run-1", "referrals.csv"),
    ]
    assert [r["cells"][4:8] for r in index.rows["validation"]] == [
        ["–", "–", "–", "rejected"],
        ["1", "1", "0", "pass"],
        ["–", "–", "–", "rejected"],
    ]
    assert docs_links(docs, "run-2").pages == [docs / RUNS_DIR / "run-2" / "referrals.csv.html"]


def test_docs_keep_prunes_to_the_newest_runs(tmp_path: Path):
    input_dir = tmp_path / "in"
    docs = tmp_path / "docs"
    con = duckdb.connect()
    create_schemas(con)
    for n in range(1, 5):  # each run changes the file, so each validates it
        rows = "".join(f"E{n}{i},P{i},2024-01-02,55,F,true\n" for i in range(n))
        write_inputs(input_dir, {"intake.csv": f"{INTAKE_HEADER}\n{rows}"})
        run_ingest(con, input_dir, f"run-{n}", docs, keep=2)
    assert sorted(p.name for p in (docs / RUNS_DIR).iterdir()) == ["run-3", "run-4"]
    index = read_page(docs / INDEX_FILE)
    listed = [(r["attrs"]["data-run"], r["cells"][4]) for r in index.rows["validation"]]
    assert listed == [("run-4", "4"), ("run-3", "3")]
    assert docs_links(docs, "run-1").pages == []
    # A larger setting keeps what is left and the next run.
    write_inputs(input_dir, {"intake.csv": f"{INTAKE_HEADER}\nE5,P5,2024-01-02,55,F,true\n"})
    run_ingest(con, input_dir, "run-5", docs, keep=3)
    assert sorted(p.name for p in (docs / RUNS_DIR).iterdir()) == ["run-3", "run-4", "run-5"]


def test_docs_keep_is_a_setting_of_one_or_more_runs(tmp_path: Path):
    (tmp_path / "redflags.toml").write_text("docs_keep = 7\n", encoding="utf-8")
    assert load_settings(site=tmp_path, environ={}).docs_keep == 7
    assert load_settings(site=tmp_path, environ={"REDFLAGS_DOCS_KEEP": "2"}).docs_keep == 2
    assert load_settings(environ={}, cwd=tmp_path / "elsewhere").docs_keep == 30
    with pytest.raises(UserError, match="environment variable REDFLAGS_DOCS_KEEP: 0 is below"):
        load_settings(site=tmp_path, environ={"REDFLAGS_DOCS_KEEP": "0"})


def test_share_of_rows_read_is_never_rounded_to_none_or_all():
    assert share_text(0, 100) == "0.00%"
    assert share_text(3, 7079) == "0.04%"
    assert share_text(1, 1_000_000) == "<0.01%"
    assert share_text(999_999, 1_000_000) == ">99.99%"
    assert share_text(5, 5) == "100.00%"
    assert share_text(0, 0) == "–"


# ------------------------------------------------------------------ where the pages go


def test_served_runs_write_their_pages_beside_the_warehouse(tmp_path: Path):
    from pipelines.flows.deployments import flow_parameters

    settings = load_settings(
        overrides={"warehouse": tmp_path / "w.duckdb", "docs_keep": 5}, environ={}, cwd=tmp_path
    )
    parameters = flow_parameters(settings)
    assert parameters["docs_dir"] == str(tmp_path / "docs")
    assert parameters["docs_keep"] == 5
    assert default_docs_dir(tmp_path / "w.duckdb") == tmp_path / "docs"


def test_the_report_links_to_the_validation_index(tmp_path: Path):
    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(published_path(warehouse)))  # the report reads the copy
    create_schemas(con)
    con.close()
    link = 'id="docs-link"'
    assert link not in write_report(warehouse).read_text(encoding="utf-8")  # no index yet
    write_index(tmp_path / "docs")
    html = write_report(warehouse).read_text(encoding="utf-8")
    assert '<a href="docs/index.html">' in html
    (tmp_path / "out").mkdir()
    elsewhere = write_index(tmp_path / "pages" / "v")
    html = write_report(warehouse, tmp_path / "out" / "r.html", docs_index=elsewhere)
    assert '<a href="../pages/v/index.html">' in html.read_text(encoding="utf-8")


@pytest.mark.slow
def test_validate_prints_the_index_it_wrote(tmp_path: Path):
    input_dir = write_inputs(tmp_path / "in", {"intake.csv": bad_intake()})
    docs = tmp_path / "pages"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "validate", str(input_dir), "--docs", str(docs)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr  # rows would be quarantined
    assert f"validation report (Data Docs): {docs / INDEX_FILE}\n" in result.stdout
    (row,) = read_page(docs / INDEX_FILE).rows["validation"]
    assert row["attrs"]["data-run"].startswith("validate-")
    assert row["cells"][4:8] == ["120", "112", "8", "fail"]
    page = read_page(docs / unquote(row["href"]))
    assert page.count("rows-quarantined") == BAD_INTAKE_ROWS


# ------------------------------------------------------------------ in a browser


@pytest.mark.slow
def test_the_index_opens_offline_and_lists_every_validation_kept(tmp_path: Path):
    """Two runs (the second changes intake, so referrals are checked again): the index,
    opened with the network blocked, lists the four validations newest first, and each
    page it links to opens and shows the counts the run made."""
    input_dir = write_inputs(
        tmp_path / "in", {"intake.csv": bad_intake(), "referrals.csv": REFERRALS}
    )
    docs = tmp_path / "docs"
    con = duckdb.connect()
    create_schemas(con)
    run_ingest(con, input_dir, "run-1", docs)
    fixed = INTAKE_HEADER + "\n" + "".join(",".join(r) + "\n" for r in intake_rows())
    write_inputs(input_dir, {"intake.csv": fixed})
    run_ingest(con, input_dir, "run-2", docs)
    expected = {  # (run, file): rows read, accepted, quarantined
        ("run-2", "intake.csv"): (120, 120, 0),
        ("run-2", "referrals.csv"): (5, 3, 2),
        ("run-1", "intake.csv"): (120, 112, 8),
        ("run-1", "referrals.csv"): (5, 3, 2),
    }

    net_log = tmp_path / "net.json"
    index = docs / INDEX_FILE
    result = browse(index, tmp_path / "index", *OFFLINE, f"--log-net-log={net_log}", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert page_requests(net_log) == []
    rows = Page(result.stdout).rows["validation"]
    listed = [(r["attrs"]["data-run"], r["attrs"]["data-file"]) for r in rows]
    assert listed == list(expected)
    for row in rows:
        key = (row["attrs"]["data-run"], row["attrs"]["data-file"])
        counts = tuple(int(c) for c in row["cells"][4:7])
        assert counts == expected[key]
        assert row["cells"][7] == ("pass" if counts[2] == 0 else "fail")
        page = docs / unquote(row["href"])
        shown = browse(page, tmp_path / "page", *OFFLINE, "--dump-dom")
        assert shown.returncode == 0, shown.stderr[-2000:]
        dom = Page(shown.stdout)
        assert (dom.by_id["run"], Path(dom.by_id["path"]).name) == key
        assert (
            tuple(dom.count(i) for i in ("rows-read", "rows-accepted", "rows-quarantined"))
            == (expected[key])
        )


@pytest.mark.slow
def test_the_sample_run_writes_its_pages_and_the_report_links_them(sample_run):
    """`redflags run` on data/sample/ (none bad): a page per file beside the warehouse, with
    the counts of the run log (rows counted here by Python's csv module), and the report's
    link to the index."""
    docs = sample_run.warehouse.parent / "docs"
    assert f"validation report (Data Docs): {docs / INDEX_FILE}\n" in sample_run.stdout
    rows = read_page(docs / INDEX_FILE).rows["validation"]
    files = ["intake.csv", "referrals.csv", "diagnoses.csv", "patients.csv"]
    counts = {}
    for name in files:
        with (SAMPLE_DIR / name).open(newline="", encoding="utf-8") as f:
            counts[name] = sum(1 for _ in csv.reader(f)) - 1
    assert [(r["attrs"]["data-file"], r["cells"][4:8]) for r in rows] == [
        (name, [f"{counts[name]:,}", f"{counts[name]:,}", "0", "pass"]) for name in files
    ]
    con = duckdb.connect(str(sample_run.warehouse), read_only=True)
    try:
        run_id, read = con.execute("SELECT run_id, rows_read FROM ops.run_log").fetchone()
    finally:
        con.close()
    assert {r["attrs"]["data-run"] for r in rows} == {run_id}
    assert read == sum(counts.values())
    report = (sample_run.warehouse.parent / "report.html").read_text(encoding="utf-8")
    assert '<a href="docs/index.html">' in report

"""A run that stores no intake row, or mostly quarantine, stops before scoring with one
line and exit code 65; a run over unchanged files goes on as before."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.cli import main
from pipelines.errors import UserError
from pipelines.ingest.guard import EXIT_EMPTY_RUN
from pipelines.published import published_path

HEADER = "encounter_id,patient_id,encounter_date,age_years,sex,chief_complaint\n"
# Three of four presentations dated after any load date: rule not_after_load_date.
MOSTLY_FUTURE = HEADER + (
    "E1,P1,2024-01-02,55,F,back pain\n"
    "E2,P2,2999-02-03,33,M,cough\n"
    "E3,P3,2999-03-04,61,F,low back pain\n"
    "E4,P4,2999-03-05,47,M,back pain\n"
)
FUTURE_ADVICE = (
    'the setting that decides it: future_dates = "accept" '
    "(a source whose dates are shifted on purpose)"
)


def write_input(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def count(warehouse: Path, sql: str) -> int:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_an_empty_input_directory_exits_65_before_prefect_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    (tmp_path / "in").mkdir()
    with pytest.raises(SystemExit) as ended:
        main(["run", "--input", str(tmp_path / "in"), "--warehouse", str(tmp_path / "w.duckdb")])
    assert ended.value.code == EXIT_EMPTY_RUN == 65
    assert capsys.readouterr().err.splitlines() == [
        f"redflags: error: {tmp_path / 'in'}: no input file (intake*, referrals*, diagnoses*, "
        "patients* (.csv, .tsv, .csv.gz, .parquet, .jsonl)); nothing to load, nothing "
        "published: check the input_dir setting (--input)"
    ]
    assert not (tmp_path / "w.duckdb").exists()


def test_validate_of_an_empty_directory_exits_65_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    (tmp_path / "in").mkdir()
    with pytest.raises(SystemExit) as ended:
        main(["validate", str(tmp_path / "in"), "--docs", str(tmp_path / "docs")])
    assert ended.value.code == 65
    assert capsys.readouterr().err.startswith(
        f"redflags: error: {tmp_path / 'in'}: no input file (intake*, referrals*"
    )


@pytest.mark.slow
def test_a_mostly_quarantined_file_stops_the_run_then_and_on_the_rerun(tmp_path: Path, run_flow):
    folder = write_input(tmp_path, {"intake.csv": MOSTLY_FUTURE})
    warehouse = tmp_path / "w.duckdb"
    path = (folder / "intake.csv").resolve()
    expected = (
        f"{path}: 3 of 4 rows quarantined (75%), top rule not_after_load_date(encounter_date) "
        f"3; {FUTURE_ADVICE}; above max_quarantine_share = 0.5, so nothing was scored or "
        "published: fix the file, or raise max_quarantine_share if this is expected"
    )
    with pytest.raises(UserError) as stopped:
        run_flow(folder, warehouse)
    assert (str(stopped.value), stopped.value.exit_code) == (expected, 65)
    # The ingest stays (the one good row, the three quarantined); nothing was scored.
    assert count(warehouse, "SELECT count(*) FROM staging.intake") == 1
    assert count(warehouse, "SELECT count(DISTINCT source_row) FROM quarantine.intake") == 3
    scored = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'features'"
    assert count(warehouse, scored) == 0
    assert not published_path(warehouse).exists()
    # Unchanged, the file is judged again by its counts in the manifest: the same line.
    with pytest.raises(UserError) as again:
        run_flow(folder, warehouse)
    assert str(again.value) == expected
    # A share the site accepts lets the run go on: one presentation scored.
    result = run_flow(folder, warehouse, max_quarantine_share=0.75)
    assert result["scored"] == 1


@pytest.mark.slow
def test_a_header_only_intake_stops_the_run(tmp_path: Path, run_flow):
    folder = write_input(tmp_path, {"intake.csv": HEADER})
    with pytest.raises(UserError) as stopped:
        run_flow(folder, tmp_path / "w.duckdb")
    assert stopped.value.exit_code == 65
    assert str(stopped.value) == (
        f"{(folder / 'intake.csv').resolve()}: no row (empty or header only); no intake row "
        "loaded, so nothing was scored or published"
    )


@pytest.mark.slow
def test_all_rows_quarantined_within_the_share_still_stops_for_no_intake_row(
    tmp_path: Path, run_flow
):
    folder = write_input(tmp_path, {"intake.csv": HEADER + "E2,P2,2999-02-03,33,M,cough\n"})
    with pytest.raises(UserError) as stopped:
        run_flow(folder, tmp_path / "w.duckdb", max_quarantine_share=1.0)
    assert str(stopped.value) == (
        f"{(folder / 'intake.csv').resolve()}: 1 of 1 rows quarantined (100%), top rule "
        f"not_after_load_date(encounter_date) 1; {FUTURE_ADVICE}; no intake row loaded, so "
        "nothing was scored or published"
    )


@pytest.mark.slow
def test_a_rerun_over_unchanged_files_is_not_an_empty_run(tmp_path: Path, run_flow):
    folder = write_input(tmp_path, {"intake.csv": HEADER + "E1,P1,2024-01-02,55,F,back pain\n"})
    warehouse = tmp_path / "w.duckdb"
    assert run_flow(folder, warehouse)["scored"] == 1
    again = run_flow(folder, warehouse)
    assert [f.status for f in again["ingest"].files] == ["unchanged"]
    assert again["scored"] == 1

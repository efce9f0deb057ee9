"""Dates outside the plausible range are quarantined value by value, never file by file.

The range is the settings `date_min` (default 1900-01-01) and `date_max` (default the
load date); every expected row below is read off the fixture text.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.cohorts.build import build_cohorts
from pipelines.config import load_settings
from pipelines.errors import UserError
from pipelines.ingest.stage import ingest_directory
from pipelines.scoring.jobs import score_warehouse
from pipelines.warehouse import create_schemas
from tests.support import SAMPLE_DIR

LOAD_DATE = date(2025, 6, 1)
HEADER = "encounter_id,patient_id,encounter_date,age_years,sex"


def ingest_text(tmp_path: Path, text: str, **bounds) -> duckdb.DuckDBPyConnection:
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    (input_dir / "intake.csv").write_text(text, encoding="utf-8")
    con = duckdb.connect()
    create_schemas(con)
    ingest_directory(con, input_dir, "r", load_date=LOAD_DATE, **bounds)
    return con


def quarantined(con) -> list[tuple]:
    return con.execute(
        "SELECT source_row, column_name, rule, value FROM quarantine.intake ORDER BY 1, 3"
    ).fetchall()


def staged(con) -> list[str]:
    return [
        r[0] for r in con.execute("SELECT encounter_id FROM staging.intake ORDER BY 1").fetchall()
    ]


def test_implausible_dates_are_quarantined_per_row_and_year_0_switches_nothing_off(
    tmp_path: Path,
):
    text = (
        f"{HEADER}\n"
        "E1,P1,2024-01-02,55,F\n"  # line 2: good
        "E2,P2,0000-01-01,55,F\n"  # line 3: year 0
        "E3,P3,-2024-01-01,55,F\n"  # line 4: a negative year
        "E4,P4,9999-12-31,55,F\n"  # line 5: after the load date
        "E5,P5,1899-12-31,55,F\n"  # line 6: before date_min
        "E6,P6,1900-01-01,55,F\n"  # line 7: date_min itself: good
        "E7,P7,2025-07-01,55,F\n"  # line 8: after the load date, beside year 0 in the file
        "E8,P8,2025-06-01,55,F\n"  # line 9: the load date itself: good
    )
    con = ingest_text(tmp_path, text)
    assert quarantined(con) == [
        (3, "encounter_date", "date_range", "0000-01-01"),
        (4, "encounter_date", "date_range", "-2024-01-01"),
        (5, "encounter_date", "not_after_load_date", "9999-12-31"),
        (6, "encounter_date", "date_range", "1899-12-31"),
        (8, "encounter_date", "not_after_load_date", "2025-07-01"),
    ]
    assert staged(con) == ["E1", "E6", "E8"]


def test_date_min_and_date_max_settings_move_the_range(tmp_path: Path):
    text = f"{HEADER}\nE1,P1,1950-01-01,55,F\nE2,P2,1990-01-01,55,F\nE3,P3,2020-01-02,55,F\n"
    con = ingest_text(tmp_path, text, date_min=date(1980, 1, 1), date_max=date(2020, 1, 1))
    assert quarantined(con) == [
        (2, "encounter_date", "date_range", "1950-01-01"),
        (4, "encounter_date", "date_range", "2020-01-02"),
    ]
    assert staged(con) == ["E2"]


def test_date_settings_are_read_from_the_file_and_checked(tmp_path: Path):
    (tmp_path / "redflags.toml").write_text("date_min = 1950-01-01\ndate_max = 2030-12-31\n")
    settings = load_settings(environ={"REDFLAGS_DATE_MAX": "2031-01-01"}, cwd=tmp_path)
    assert (settings.date_min, settings.date_max) == (date(1950, 1, 1), date(2031, 1, 1))
    assert load_settings(environ={}, cwd=tmp_path / "..").date_min == date(1900, 1, 1)
    (tmp_path / "redflags.toml").write_text('date_min = "01/02/1950"\n')
    with pytest.raises(UserError, match="key 'date_min': '01/02/1950' is not a date"):
        load_settings(environ={}, cwd=tmp_path)
    (tmp_path / "redflags.toml").write_text("date_min = 2000-01-01\ndate_max = 1999-12-31\n")
    with pytest.raises(UserError, match="date_max = 1999-12-31 is before date_min = 2000-01-01"):
        load_settings(environ={}, cwd=tmp_path)


def data_end_and_care_gaps(tmp_path: Path, extra_intake_lines: list[str]) -> tuple[date, int]:
    """The sample data, with extra intake lines, through ingest, scoring and the cohorts."""
    input_dir = tmp_path / "in"
    shutil.copytree(SAMPLE_DIR, input_dir)
    with (input_dir / "intake.csv").open("a", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in extra_intake_lines)
    con = duckdb.connect()
    create_schemas(con)
    ingest_directory(con, input_dir, "r", load_date=date(2026, 1, 15))
    score_warehouse(con)
    built = build_cohorts(con)
    return built["data_end"], built["marts"]["care_gaps"]


@pytest.mark.slow
def test_far_future_rows_move_neither_data_end_nor_the_care_gaps(tmp_path: Path):
    # The sample's latest encounter and referral are both on 2025-12-31 (read off the
    # files with `sort`). Its first line, copied with new ids, dated 0000-01-01 once and
    # 9999-12-31 twice: the year-0 row used to switch the not-after check off for the file.
    first = (SAMPLE_DIR / "intake.csv").read_text(encoding="utf-8").splitlines()[1]
    assert first.startswith('"E00000001","P0000001",2025-02-19,')
    bad = [
        first.replace('"E00000001"', f'"EBAD{i}"').replace("2025-02-19", day)
        for i, day in enumerate(["0000-01-01", "9999-12-31", "9999-12-31"])
    ]
    clean_end, clean_gaps = data_end_and_care_gaps(tmp_path / "clean", [])
    end, gaps = data_end_and_care_gaps(tmp_path / "bad", bad)
    assert clean_end == end == date(2025, 12, 31)
    assert gaps == clean_gaps


def test_future_dates_accept_lets_a_date_shifted_source_through(tmp_path: Path):
    # Shifted like MIMIC's: a century and more after the load date of 2025-06-01.
    text = (
        f"{HEADER}\n"
        "E1,P1,2150-03-04,55,F\n"  # line 2: shifted: accepted
        "E2,P2,2201-12-31,55,F\n"  # line 3: after date_max = 2200-12-31
        "E3,P3,1899-12-31,55,F\n"  # line 4: before date_min, whatever future_dates says
    )
    con = ingest_text(tmp_path, text, future_dates="accept", date_max=date(2200, 12, 31))
    assert quarantined(con) == [
        (3, "encounter_date", "date_range", "2201-12-31"),
        (4, "encounter_date", "date_range", "1899-12-31"),
    ]
    assert staged(con) == ["E1"]


def test_future_dates_accept_without_date_max_leaves_the_future_unbounded(tmp_path: Path):
    text = f"{HEADER}\nE1,P1,2150-03-04,55,F\nE2,P2,9999-12-31,55,F\n"
    assert staged(ingest_text(tmp_path, text, future_dates="accept")) == ["E1", "E2"]


def test_future_dates_setting_is_read_and_checked(tmp_path: Path):
    assert load_settings(environ={}, cwd=tmp_path).future_dates == "quarantine"
    (tmp_path / "redflags.toml").write_text('future_dates = "accept"\n')
    assert load_settings(environ={}, cwd=tmp_path).future_dates == "accept"
    env = {"REDFLAGS_FUTURE_DATES": "quarantine"}
    assert load_settings(environ=env, cwd=tmp_path).future_dates == "quarantine"
    (tmp_path / "redflags.toml").write_text('future_dates = "allow"\n')
    with pytest.raises(UserError) as bad:
        load_settings(environ={}, cwd=tmp_path)
    assert str(bad.value) == (
        f"{tmp_path / 'redflags.toml'}: key 'future_dates': 'allow' is not one of "
        "quarantine, accept"
    )


def test_max_quarantine_share_setting_is_read_and_checked(tmp_path: Path):
    assert load_settings(environ={}, cwd=tmp_path).max_quarantine_share == 0.5
    env = {"REDFLAGS_MAX_QUARANTINE_SHARE": "0.9"}
    assert load_settings(environ=env, cwd=tmp_path).max_quarantine_share == 0.9
    with pytest.raises(UserError) as bad:
        load_settings(environ={"REDFLAGS_MAX_QUARANTINE_SHARE": "50%"}, cwd=tmp_path)
    assert str(bad.value) == (
        "environment variable REDFLAGS_MAX_QUARANTINE_SHARE: '50%' is not a number from 0 to 1"
    )
    with pytest.raises(UserError, match=r"1.5 is not a share from 0 to 1 \(0.5 is half"):
        load_settings(environ={"REDFLAGS_MAX_QUARANTINE_SHARE": "1.5"}, cwd=tmp_path)

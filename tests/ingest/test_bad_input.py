"""Bad input costs its own row, never the file: one test per kind, outcomes worked out
from the fixture text. And the rows stored are those of the bytes hashed."""

from __future__ import annotations

import gzip
import io
import zipfile
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.ingest import prepare, readers
from pipelines.ingest.stage import LOADED, REJECTED, format_summary, ingest_directory
from pipelines.warehouse import create_schemas
from tests.ingest.test_ingest import (
    GOOD_INTAKE,
    HEADER,
    LOAD_DATE,
    assert_counts,
    ingest,
    quarantined,
    report,
    staged_ids,
)

# --------------------------------------------------------------- the bytes hashed are read

OLD = f"{HEADER}\nE1,P1,2024-01-02,55,F\nE2,P2,2024-02-03,33,M\n"
NEW = f"{HEADER}\nE7,P7,2024-03-04,44,F\n"


def test_a_file_changed_between_hashing_and_reading_is_not_stored_under_the_old_hash(
    tmp_path: Path, monkeypatch
):
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    path = input_dir / "intake.csv"
    path.write_text(OLD)
    original = prepare.read_header

    def rewritten_after_hashing(info):
        path.write_text(NEW)  # another program saves the file while it is being read
        return original(info)

    con = duckdb.connect()
    create_schemas(con)
    monkeypatch.setattr(prepare, "read_header", rewritten_after_hashing)
    first = ingest_directory(con, input_dir, "run-1", load_date=LOAD_DATE).files[0]
    monkeypatch.undo()
    assert first.status == REJECTED
    assert "intake.csv: changed while it was being read" in first.message
    assert con.execute("SELECT count(*) FROM raw.intake").fetchone()[0] == 0

    # The old content again: not "unchanged" (nothing was loaded under its hash): read.
    path.write_text(OLD)
    second = ingest_directory(con, input_dir, "run-2", load_date=LOAD_DATE).files[0]
    assert second.status == LOADED
    assert staged_ids(con) == ["E1", "E2"]


def test_a_parquet_file_changed_between_hashing_and_reading_is_rejected(
    tmp_path: Path, monkeypatch
):
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    path = input_dir / "intake.parquet"
    table = pa.table(
        {"encounter_id": ["E1"], "patient_id": ["P1"], "encounter_date": ["2024-01-02"],
         "age_years": ["55"], "sex": ["F"]}
    )  # fmt: skip
    pq.write_table(table, path)
    original = prepare.read_header

    def rewritten_after_hashing(info):
        pq.write_table(table.set_column(0, "encounter_id", pa.array(["E9"])), path)
        return original(info)

    con = duckdb.connect()
    create_schemas(con)
    monkeypatch.setattr(prepare, "read_header", rewritten_after_hashing)
    r = ingest_directory(con, input_dir, "run-1", load_date=LOAD_DATE).files[0]
    assert r.status == REJECTED
    assert "changed while it was being read" in r.message


# --------------------------------------------------------------- one bad value, one row


def test_an_overlong_field_quarantines_its_row_only(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 100)
    long = "x" * 150
    text = (
        f"{HEADER},chief_complaint\n"
        "E1,P1,2024-01-02,55,F,back pain\n"
        f"E2,P2,2024-01-02,56,M,{long}\n"
        "E3,P3,2024-01-02,57,F,sciatica\n"
    )
    summary, con = ingest(tmp_path, {"intake.csv": text})
    assert_counts(report(summary, "intake.csv"), 3, 2, 1)
    assert quarantined(con) == [(3, "chief_complaint", "max_length", "x" * 150)]
    assert staged_ids(con) == ["E1", "E3"]


def test_a_5_mb_field_quarantines_its_row_only_at_the_default_limit(tmp_path: Path):
    # Larger than Arrow's 4 MB parse blocks: this used to reject the whole file.
    long = "y" * (5 * 2**20)
    text = f"{HEADER},chief_complaint\nE1,P1,2024-01-02,55,F,ok\nE2,P2,2024-01-02,56,M,{long}\n"
    summary, con = ingest(tmp_path, {"intake.csv": text})
    assert_counts(report(summary, "intake.csv"), 2, 1, 1)
    ((row, column, rule, value),) = quarantined(con)
    assert (row, column, rule) == (3, "chief_complaint", "max_length")
    assert value == "y" * 200 + "... (5,242,880 bytes)"
    assert staged_ids(con) == ["E1"]


REFERRAL = '{{"referral_id": "{id}", "patient_id": "P1", "referral_date": "2024-01-05", "referral_type": "imaging"{more}}}'  # noqa: E501


def test_a_nested_json_value_quarantines_its_row_only(tmp_path: Path):
    lines = [
        REFERRAL.format(id="R1", more=""),
        REFERRAL.format(id="R2", more=', "code": ["72149", "72148"]'),
        REFERRAL.format(id="R3", more=', "code": "72149"'),
        "not json at all",
    ]
    summary, con = ingest(
        tmp_path, {"intake.csv": GOOD_INTAKE, "referrals.jsonl": "\n".join(lines) + "\n"}
    )
    assert_counts(report(summary, "referrals.jsonl"), 4, 2, 2)
    assert quarantined(con, "referrals") == [
        (2, "code", "scalar", '["72149", "72148"]'),
        (4, None, "json_object", "not json at all"),
    ]
    assert staged_ids(con, "referrals", "referral_id") == ["R1", "R3"]


def test_an_age_written_as_a_string_in_json_lines_is_read_like_the_others(tmp_path: Path):
    line = '{{"encounter_id": "{e}", "patient_id": "P1", "encounter_date": "2024-01-02", "age_years": {age}, "sex": "F"}}'  # noqa: E501
    text = "\n".join(
        [line.format(e="E1", age="55"), line.format(e="E2", age='"54"'),
         line.format(e="E3", age="61"), line.format(e="E4", age="104.0")]
    )  # fmt: skip
    summary, con = ingest(tmp_path, {"intake.jsonl": text + "\n"})
    r = report(summary, "intake.jsonl")
    assert r.rows_read == 4
    assert r.accepted + r.quarantined == 4
    ages = dict(con.execute("SELECT encounter_id, age_years FROM staging.intake").fetchall())
    assert {k: ages[k] for k in ("E1", "E2", "E3")} == {"E1": 55, "E2": 54, "E3": 61}
    # 104.0 keeps the text it was written with (Arrow would have made it 104).
    raw = con.execute("SELECT age_years FROM raw.intake WHERE encounter_id = 'E4'").fetchone()
    assert raw is None or raw[0] != "104"


def test_a_parquet_timestamp_with_a_time_of_day_quarantines_its_row_only(tmp_path: Path):
    table = pa.table(
        {
            "encounter_id": ["E1", "E2", "E3"],
            "patient_id": ["P1", "P2", "P3"],
            "encounter_date": pa.array(
                [datetime(2024, 1, 2), datetime(2024, 1, 5, 10, 30), datetime(2024, 1, 6)],
                pa.timestamp("us"),
            ),
            "age_years": pa.array([55, 56, 57], pa.int64()),
            "sex": ["F", "M", "F"],
        }
    )
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in" / "intake.parquet")
    summary, con = ingest(tmp_path, {})
    assert_counts(report(summary, "intake.parquet"), 3, 2, 1)
    assert quarantined(con) == [(2, "encounter_date", "date", "2024-01-05T10:30:00.000000")]
    dates = con.execute("SELECT encounter_date FROM staging.intake ORDER BY 1").fetchall()
    assert dates == [(date(2024, 1, 2),), (date(2024, 1, 6),)]


def test_a_nested_parquet_value_quarantines_its_row_only(tmp_path: Path):
    table = pa.table(
        {
            "encounter_id": ["E1", "E2"],
            "patient_id": ["P1", "P2"],
            "encounter_date": ["2024-01-02", "2024-01-03"],
            "age_years": ["55", "56"],
            "sex": ["F", "M"],
            "dx_codes": pa.array([None, ["M54.5"]], pa.list_(pa.string())),
        }
    )
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in" / "intake.parquet")
    summary, con = ingest(tmp_path, {})
    assert_counts(report(summary, "intake.parquet"), 2, 1, 1)
    assert quarantined(con) == [(2, "dx_codes", "scalar", '["M54.5"]')]


def test_parquet_columns_differing_only_in_case_reject_the_file_as_csv_does(tmp_path: Path):
    table = pa.table(
        {
            "encounter_id": ["E1"],
            "patient_id": ["P1"],
            "encounter_date": ["2024-01-02"],
            "age_years": ["55"],
            "AGE_YEARS": ["99"],
            "sex": ["F"],
        }
    )
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in" / "intake.parquet")
    summary, con = ingest(tmp_path, {})
    r = report(summary, "intake.parquet")
    assert r.status == REJECTED
    assert r.message.endswith(
        "intake.parquet: column(s) age_years appear more than once in the header "
        "(names compared in lower case); keep one of each"
    )
    assert con.execute("SELECT count(*) FROM raw.intake").fetchone()[0] == 0


# --------------------------------------------------------------- what a file is


def test_utf16_text_is_read_and_said_to_be_utf16(tmp_path: Path):
    summary, con = ingest(tmp_path, {"intake.csv": GOOD_INTAKE.encode("utf-16")})
    r = report(summary, "intake.csv")
    assert_counts(r, 2, 2, 0)
    assert r.warnings == [
        "intake.csv: is UTF-16 text, read as such; save it as UTF-8 to silence this warning"
    ]
    assert staged_ids(con) == ["E1", "E2"]


def test_a_zip_named_csv_is_said_to_be_a_zip_archive(tmp_path: Path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("intake.csv", GOOD_INTAKE)
    summary, _ = ingest(tmp_path, {"intake.csv": buffer.getvalue()})
    r = report(summary, "intake.csv")
    assert r.status == REJECTED
    assert r.message.endswith(
        "intake.csv: is a zip archive (an .xlsx workbook is one), not CSV text; export the "
        "table as CSV, or unzip the file into the input directory"
    )


def test_a_gzip_named_csv_is_read_and_said_to_be_gzip(tmp_path: Path):
    summary, con = ingest(tmp_path, {"intake.csv": gzip.compress(GOOD_INTAKE.encode())})
    r = report(summary, "intake.csv")
    assert_counts(r, 2, 2, 0)
    assert r.warnings == [
        "intake.csv: is gzip-compressed though its name does not end in .gz; read "
        "decompressed (name it .gz to silence this warning)"
    ]


def test_tsv_is_read_and_other_files_are_listed_not_skipped_silently(tmp_path: Path):
    outside = tmp_path / "secret.csv"
    outside.write_text(GOOD_INTAKE)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "intake_link.csv").symlink_to(outside)
    (tmp_path / "in" / "sub").mkdir()
    summary, con = ingest(
        tmp_path,
        {
            "intake.tsv": GOOD_INTAKE.replace(",", "\t"),
            "intake_notes.txt": "notes",
            "readme.csv": "a,b\n",
        },
    )
    assert_counts(report(summary, "intake.tsv"), 2, 2, 0)
    assert staged_ids(con) == ["E1", "E2"]
    assert summary.skipped == [
        f"intake_link.csv: refused: a symbolic link to {outside}, outside the input "
        "directory; copy the file into the input directory instead",
        "intake_notes.txt: not a .csv, .tsv, .csv.gz, .parquet or .jsonl file",
        "readme.csv: its name starts with none of intake, referrals, diagnoses, patients",
        "sub: a directory; files in subdirectories are not read",
    ]
    text = format_summary(summary)
    assert "files not read:\n  intake_link.csv: refused: a symbolic link to" in text
    assert "\n  intake_notes.txt: not a .csv" in text


def test_full_width_digits_do_not_stop_the_reader(tmp_path: Path):
    text = f"{HEADER}\nE1,P1,2024-01-02,\uff15\uff14,F\nE2,P2,2024-01-02,33,M\n"
    summary, con = ingest(tmp_path, {"intake.csv": text})
    r = report(summary, "intake.csv")
    assert r.rows_read == 2
    assert r.accepted + r.quarantined == 2
    assert "E2" in staged_ids(con)

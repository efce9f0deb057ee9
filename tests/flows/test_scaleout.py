"""The split ingest (prepare anywhere, load in the single writer) and the Dask scale-out.

Expected rows are worked out from the fixture text by hand; the Dask run is compared
with a run in one process over the same files, table by table.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from pipelines.config import load_settings
from pipelines.errors import UserError
from pipelines.ingest.prepare import QUARANTINE_FILE, RAW_FILE
from pipelines.ingest.stage import REJECTED, UNCHANGED, load_file, prepare_file
from pipelines.warehouse import create_schemas
from tests.support.orchestration import (
    INTAKE_A,
    INTAKE_B,
    REFERRALS_A,
    REFERRALS_B,
    differences,
    write_inputs,
)

LOAD_DATE = date(2025, 6, 1)
HEADER = "encounter_id,patient_id,encounter_date,age_years,sex,chief_complaint,night_pain"
# Line 2 is good; line 3 has a sex the contract does not allow; line 4 is ragged; line 5
# repeats E1 (a unique id: the loader, which sees every file, quarantines it, not this
# step); line 6 holds an e-mail address in free text and an age above the cap of 90.
INTAKE = (
    f"{HEADER},favourite_colour\n"
    "E1,P1,2024-01-02,55,F,back pain,yes,blue\n"
    "E2,P2,2024-01-03,40,Q,cough,no,red\n"
    "E3,P3,2024-01-04\n"
    "E1,P4,2024-01-05,61,M,,,green\n"
    "E5,P5,2024-01-06,97,X,write to ann@example.org,N,\n"
)


def rows(path: Path, columns: str, order: str = "source_row") -> list[tuple]:
    """Rows of a prepared file: Parquet, or the Arrow IPC stream of the raw rows."""
    con = duckdb.connect()
    try:
        if path.name == RAW_FILE:
            con.register("prepared", pa.ipc.open_stream(pa.OSFile(str(path))).read_all())
        else:
            con.execute(f"CREATE VIEW prepared AS SELECT * FROM read_parquet('{path}')")
        return con.execute(f"SELECT {columns} FROM prepared ORDER BY {order}").fetchall()
    finally:
        con.close()


def test_prepare_writes_raw_and_quarantine_without_a_warehouse_then_the_load_types_staging(
    tmp_path: Path,
):
    source = tmp_path / "in" / "intake.csv"
    source.parent.mkdir()
    source.write_text(INTAKE, encoding="utf-8")
    prepared = prepare_file("intake", source, tmp_path / "work", load_date=LOAD_DATE)
    report = prepared.report
    assert (report.status, report.rows_read, report.redacted, report.capped) == ("loaded", 5, 1, 1)
    assert prepared.sha256 == hashlib.sha256(INTAKE.encode("utf-8")).hexdigest()
    assert prepared.size == len(INTAKE.encode("utf-8"))
    work = Path(prepared.work_dir)
    assert work.is_relative_to(tmp_path / "work")

    # raw: every parsed line as text, scrubbed; the ragged line 4 is not a row, and the
    # column outside the contract is not kept.
    assert rows(work / RAW_FILE, "source_row, encounter_id, sex, age_years, chief_complaint") == [
        (2, "E1", "F", "55", "back pain"),
        (3, "E2", "Q", "40", "cough"),
        (5, "E1", "M", "61", None),
        (6, "E5", "X", "90", "write to [REDACTED]"),
    ]
    assert pa.ipc.open_stream(pa.OSFile(str(work / RAW_FILE))).schema.names[-2:] == [
        "bladder_bowel_dysfunction",
        "source_row",
    ]
    # quarantine: this file's own failures only.
    assert rows(work / QUARANTINE_FILE, "source_row, column_name, rule, value") == [
        (3, "sex", "allowed", "Q"),
        (4, None, "field_count", "E3,P3,2024-01-04"),
    ]
    # staging: the load casts the rows no rule quarantined (night_pain 'yes' and 'N' are
    # booleans); line 5 repeats E1, which the load quarantines, as ids span files.
    con = duckdb.connect()
    try:
        create_schemas(con)
        load_file(con, prepared, "run-1")
        assert con.execute(
            "SELECT source_row, encounter_id, encounter_date, age_years, night_pain "
            "FROM staging.intake ORDER BY source_row"
        ).fetchall() == [
            (2, "E1", date(2024, 1, 2), 55, True),
            (6, "E5", date(2024, 1, 6), 90, False),
        ]
        assert con.execute(
            "SELECT source_row, rule FROM quarantine.intake ORDER BY source_row"
        ).fetchall() == [(3, "allowed"), (4, "field_count"), (5, "unique")]
    finally:
        con.close()


def test_prepare_stops_after_the_hash_for_an_unchanged_file_and_stores_nothing_rejected(
    tmp_path: Path,
):
    source = tmp_path / "intake.csv"
    source.write_text(INTAKE, encoding="utf-8")
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    same = prepare_file("intake", source, tmp_path / "work", loaded_hash=sha, load_date=LOAD_DATE)
    assert (same.report.status, same.report.rows_read, same.work_dir) == (UNCHANGED, 0, None)
    assert not (tmp_path / "work").exists()

    bad = tmp_path / "intake_bad.csv"
    bad.write_text("encounter_id,patient_id,ssn\nE1,P1,123-45-6789\n", encoding="utf-8")
    rejected = prepare_file("intake", bad, tmp_path / "work", load_date=LOAD_DATE)
    assert (rejected.report.status, rejected.work_dir) == (REJECTED, None)
    assert "ssn" in rejected.report.message
    assert not (tmp_path / "work").exists()


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workers = -1\n", "key 'workers': -1 is below the minimum of 0"),
        ('workers = "two"\n', "key 'workers': 'two' is not a whole number"),
        (
            'dask_address = "localhost:8786"\n',
            "key 'dask_address': 'localhost:8786' is not a Dask scheduler address; "
            "write it like 'tcp://10.0.0.5:8786'",
        ),
        (
            'workers = 2\ndask_address = "tcp://10.0.0.5:8786"\n',
            "workers = 2 and dask_address = 'tcp://10.0.0.5:8786' both set",
        ),
    ],
)
def test_bad_dask_settings_fail_in_one_line(tmp_path: Path, text: str, message: str):
    (tmp_path / "redflags.toml").write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_settings(environ={}, cwd=tmp_path)
    assert message in str(err.value)
    assert err.value.exit_code == 2


def test_dask_settings_from_file_environment_and_options(tmp_path: Path):
    (tmp_path / "redflags.toml").write_text("workers = 3\n", encoding="utf-8")
    assert load_settings(environ={}, cwd=tmp_path).workers == 3
    from_env = load_settings(environ={"REDFLAGS_WORKERS": "0"}, cwd=tmp_path)
    assert (from_env.workers, from_env.dask_address) == (0, None)
    address = "tcp://10.0.0.5:8786"
    given = load_settings(None, {"workers": 0, "dask_address": address}, environ={}, cwd=tmp_path)
    assert (given.workers, given.dask_address) == (0, address)


@pytest.mark.parametrize(
    ("text", "noted"),
    [("workers = 2\n", True), ('dask_address = "tcp://10.0.0.5:8786"\n', True), ("", False)],
)
def test_serve_says_that_dask_settings_apply_to_run_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, text, noted
):
    """A served run imports the flow with its default task runner, so the settings are unused."""
    import pipelines.flows.deployments as deployments
    from pipelines.cli import serve

    (tmp_path / "redflags.toml").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(deployments, "require_server", lambda: "http://127.0.0.1:4200/api")
    served = []
    monkeypatch.setattr(deployments, "serve_deployments", served.append)
    serve(None)
    assert len(served) == 1
    note = "workers and dask_address apply to `redflags run` only"
    assert (note in capsys.readouterr().err) is noted


# ------------------------------------------------------------------ the flow on Dask


def test_workers_start_a_local_cluster_of_single_threaded_processes_and_none_means_no_dask():
    from pipelines.flows.run import dask_runner

    assert dask_runner(0, None) is None
    local = dask_runner(3)
    assert local.cluster_kwargs == {
        "n_workers": 3,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
    }
    assert dask_runner(0, "tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"


@pytest.mark.slow
def test_a_two_worker_dask_run_equals_a_run_in_one_process(tmp_path: Path):
    """Two runs on a 2-worker local cluster (the second adds files, so intake changes and
    the unchanged referrals are rechecked) give the tables of one run in one process.

    One cluster serves both runs, reached by its address as `--dask-address` would.
    """
    from distributed import LocalCluster

    from pipelines.flows.prefect_env import configure_prefect

    configure_prefect()
    from pipelines.flows.run import run_pipeline

    bad_referral = "R9,P9,2024-03-01,imaging\n"  # P9 is in no intake: quarantined
    inputs = write_inputs(
        tmp_path / "in",
        {"intake_2024a.csv": INTAKE_A, "referrals_a.csv": REFERRALS_A + bad_referral},
    )

    def parameters(warehouse: Path, docs: Path | None = None) -> dict:
        return {"input_dir": str(inputs), "warehouse": str(warehouse)} | (
            {"docs_dir": str(docs)} if docs else {}
        )

    on_dask = tmp_path / "dask.duckdb"
    docs = tmp_path / "dask-docs"
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        first = run_pipeline(parameters(on_dask, docs), dask_address=address)
        assert first["raw"] == {"intake": 3, "referrals": 3, "diagnoses": 0, "patients": 0}
        write_inputs(inputs, {"intake_2024b.csv": INTAKE_B, "referrals_b.csv": REFERRALS_B})
        # What a run killed between prepare and load would leave: removed, never loaded.
        stale = tmp_path / ".redflags-work" / "dask.duckdb" / "killed-run" / "intake" / "x"
        stale.mkdir(parents=True)
        (stale / RAW_FILE).write_bytes(b"left by a killed run")
        second = run_pipeline(parameters(on_dask, docs), dask_address=address)
    statuses = {Path(f.path).name: f.status for f in second["ingest"].files}
    assert statuses == {
        "intake_2024a.csv": "unchanged",
        "intake_2024b.csv": "loaded",
        "referrals_a.csv": "loaded",
        "referrals_b.csv": "loaded",
    }
    assert second["validation"]["quarantined"] == 1
    # The validation pages, written by the flow from the reports the workers handed back:
    # the index lists every validation of both runs, newest first (run 2: intake_2024b,
    # referrals_a checked again, referrals_b; run 1: intake_2024a, referrals_a), whichever
    # worker made it, with the rows the run quarantined (P9's referral, each time).
    index = (docs / "index.html").read_text(encoding="utf-8")
    listed = re.findall(r'data-run="([^"]+)" data-file="([^"]+)"', index)
    assert listed == [
        (second["run_id"], "intake_2024b.csv"),
        (second["run_id"], "referrals_a.csv"),
        (second["run_id"], "referrals_b.csv"),
        (first["run_id"], "intake_2024a.csv"),
        (first["run_id"], "referrals_a.csv"),
    ]
    quarantined = re.findall(r'<td class="num quarantined">(\d+)</td>', index)
    assert quarantined == ["0", "1", "0", "0", "1"]
    pages = re.findall(r'<a href="([^"]+)"', index)
    assert len(pages) == 5 and all((docs / p).is_file() for p in pages)
    # Nothing of the runs' work directories (nor the stale one) is left beside the warehouse.
    assert not (tmp_path / ".redflags-work").exists()

    in_one_process = tmp_path / "single.duckdb"
    run_pipeline(parameters(in_one_process))
    assert differences(on_dask, in_one_process) == {}
    # ... and the comparison sees the data: the tables are not empty.
    con = duckdb.connect(str(on_dask), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM staging.referrals").fetchone()[0] == 3
        assert con.execute("SELECT count(*) FROM quarantine.referrals").fetchone()[0] == 1
    finally:
        con.close()

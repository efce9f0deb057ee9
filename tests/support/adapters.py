"""Helpers shared by the OMOP and FHIR adapter tests: canonical rows and a CLI run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from pipelines.contracts import load_contract

TABLES = ("intake", "referrals", "diagnoses")


def rows(path: Path) -> list[dict]:
    """The rows of a canonical Parquet file as dicts, in file order."""
    rel = duckdb.sql(f"SELECT * FROM read_parquet('{path}')")
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


def canonical(table: str, **values: object) -> dict:
    """A canonical row: every contract column, NULL unless given."""
    names = load_contract(table).names
    assert set(values) <= set(names)
    return {name: values.get(name) for name in names}


def all_values(out_dir: Path) -> str:
    """Every value of the three canonical files, as one text to search."""
    return " ".join(
        str(v) for t in TABLES for r in rows(out_dir / f"{t}.parquet") for v in r.values()
    )


def run_cli(
    source: str, input_dir: Path, warehouse: Path, *options: str
) -> tuple[subprocess.CompletedProcess, dict]:
    """`redflags run --source ... [options]` in a subprocess; the result and the raw row
    counts."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            "--source",
            source,
            "--input",
            str(input_dir),
            "--warehouse",
            str(warehouse),
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        # Prefect's ephemeral server gets 20 s to start by default, too few on a busy
        # shared machine; the wait is Prefect's, not the adapters'.
        env={**os.environ, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"},
    )
    counts: dict[str, int] = {}
    if result.returncode == 0:
        con = duckdb.connect(str(warehouse), read_only=True)
        counts = {t: con.execute(f"SELECT count(*) FROM raw.{t}").fetchone()[0] for t in TABLES}
        con.close()
    return result, counts


def contract_violations(out_dir: Path) -> list[str]:
    """What in the three canonical files breaks its contract in schemas/ (empty: none).

    Checked column by column from the contract itself: types, required, allowed
    values, bounds and the primary key, so an adapter cannot write a value the
    validation stage would quarantine for its own reasons.
    """
    problems: list[str] = []
    for table in TABLES:
        contract = load_contract(table)
        rel = duckdb.sql(f"SELECT * FROM read_parquet('{out_dir / f'{table}.parquet'}')")
        if rel.columns != contract.names:
            problems.append(f"{table}: columns {rel.columns}")
            continue
        types = dict(zip(rel.columns, (str(t) for t in rel.types), strict=True))
        for c in contract.columns:
            if types[c.name] != c.duckdb_type:
                problems.append(f"{table}.{c.name}: type {types[c.name]}")
            checks = []
            if c.required:
                checks.append(f"{c.name} IS NULL")
            if c.allowed:
                allowed = ", ".join(f"'{v}'" for v in c.allowed)
                checks.append(f"{c.name} NOT IN ({allowed})")
            if c.min is not None:
                checks.append(f"{c.name} < {c.min}")
            if c.max is not None:
                checks.append(f"{c.name} > {c.max}")
            for check in checks:
                n = _count(out_dir / f"{table}.parquet", f"count(*) FILTER (WHERE {check})")
                if n:
                    problems.append(f"{table}: {n} rows with {check}")
        if contract.primary_key:
            key = contract.primary_key
            dupes = _count(out_dir / f"{table}.parquet", f"count(*) - count(DISTINCT {key})")
            if dupes:
                problems.append(f"{table}: {dupes} duplicate {key}")
    return problems


def _count(path: Path, aggregate: str) -> int:
    return duckdb.sql(f"SELECT {aggregate} FROM read_parquet('{path}')").fetchall()[0][0]

"""Input files as Parquet partitions: the unit of work that can run on any worker.

Reading and converting a file needs no warehouse, so it can run in parallel (threads or a
Dask cluster); only the main process writes the warehouse, from these partitions.
A partition is named by the file's path and content hash and by the contract it was read
with, so an unchanged file is never converted twice and a changed one always is.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import duckdb

from pipelines.paths import SCHEMAS_DIR
from pipelines.sources.canonical import raw_select_sql

# Bump when the partition layout changes, so that old partitions are not reused.
PARTITION_FORMAT = "1"


@dataclass(frozen=True)
class Partition:
    """One converted input file: where it came from, where it is, how many rows it holds."""

    table: str
    source: str
    path: str
    rows: int


@lru_cache(maxsize=4096)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def file_sha256(path: str | Path) -> str:
    """Content hash of a file, remembered while its size and mtime stay the same."""
    stat = os.stat(path)
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def partition_key(table: str, source: str | Path) -> str:
    """What a partition depends on: the file's path and content, and the table's contract."""
    digest = hashlib.sha256()
    contract = SCHEMAS_DIR / f"{table}.yml"
    for part in (PARTITION_FORMAT, table, str(Path(source).resolve()), file_sha256(source)):
        digest.update(part.encode() + b"\0")
    digest.update(contract.read_bytes())
    return digest.hexdigest()


def partition_path(parts_dir: str | Path, table: str, source: str | Path) -> Path:
    return Path(parts_dir) / table / f"{partition_key(table, source)[:32]}.parquet"


def write_partition(table: str, source: str | Path, parts_dir: str | Path) -> Partition:
    """Convert one input file to its Parquet partition (text columns + lineage).

    Written to a temporary name and renamed, so a worker killed halfway leaves no
    partition that looks complete.
    """
    source = Path(source)
    out = partition_path(parts_dir, table, source)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    con = duckdb.connect()
    try:
        query = raw_select_sql(con, table, source.resolve())
        con.execute(f"COPY ({query}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{tmp}')").fetchone()[0]
    finally:
        con.close()
    os.replace(tmp, out)
    return Partition(table=table, source=str(source.resolve()), path=str(out), rows=rows)


def load_partitions(
    con: duckdb.DuckDBPyConnection, table: str, partitions: list[Partition], run_id: str
) -> int:
    """Append the partitions of one table to raw.<table>, stamped with the run id."""
    if not partitions:
        return 0
    files = ", ".join("'" + p.path.replace("'", "''") + "'" for p in partitions)
    con.execute(f"INSERT INTO raw.{table} SELECT *, ? FROM read_parquet([{files}])", [run_id])
    return sum(p.rows for p in partitions)


def prune_partitions(parts_dir: str | Path, keep: list[Partition]) -> int:
    """Delete partitions no longer in use (files changed or removed); returns how many."""
    kept = {Path(p.path).resolve() for p in keep}
    removed = 0
    for old in Path(parts_dir).glob("*/*.parquet"):
        if old.resolve() not in kept:
            old.unlink(missing_ok=True)
            removed += 1
    return removed

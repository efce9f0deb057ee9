"""Write the synthetic `intake`, `referrals`, `diagnoses` and `patients` files, chunk by chunk.

Patients are generated in chunks of `chunk_size`; chunk i draws from its own
random stream, `SeedSequence(seed, spawn_key=(i,))`, and is appended to the
files before the next one starts, so memory stays flat whatever the population
and the same seed and chunk size give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.contracts import TABLES, load_contract
from pipelines.errors import UserError
from pipelines.synth.followup import (
    generate_complicating_diagnoses,
    generate_other_imaging,
    generate_patients,
)
from pipelines.synth.intake import Numbering, document_intake
from pipelines.synth.orders import generate_diagnoses, generate_orders
from pipelines.synth.population import generate_population
from pipelines.synth.profile import load_profile

FORMATS: tuple[str, ...] = ("csv", "parquet")
DEFAULT_START = date(2023, 1, 1)
DEFAULT_END = date(2025, 12, 31)
DEFAULT_CHUNK_SIZE = 50_000
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int32(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
}


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of a canonical table, in contract column order."""
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in load_contract(table).columns])


class _TableWriter:
    """Appends chunks to one output file; written under a temporary name until closed."""

    def __init__(self, path: Path, schema: pa.Schema, fmt: str) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".part")
        self.schema = schema
        if fmt == "csv":
            self._writer: pacsv.CSVWriter | pq.ParquetWriter = pacsv.CSVWriter(
                str(self.partial), schema, write_options=pacsv.WriteOptions(batch_size=65_536)
            )
        else:
            self._writer = pq.ParquetWriter(str(self.partial), schema, compression="zstd")
        self.rows = 0

    def table(self, columns: dict[str, pa.Array]) -> pa.Table:
        """The chunk as a table in contract order; counts its rows for the next ids."""
        table = pa.Table.from_arrays([columns[n] for n in self.schema.names], schema=self.schema)
        self.rows += table.num_rows
        return table

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def finish(self) -> None:
        self._writer.close()
        os.replace(self.partial, self.path)

    def abandon(self) -> None:
        self._writer.close()
        self.partial.unlink(missing_ok=True)


def _write_all(writers: dict[str, _TableWriter], tables: dict[str, pa.Table]) -> None:
    for table, data in tables.items():
        writers[table].write(data)


def check_arguments(
    out_dir: Path, patients: int, seed: int, start: date, end: date, fmt: str
) -> None:
    """Fail with one clear line before any work when the request cannot be met."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)} (got {fmt})", exit_code=2)
    if patients < 1:
        raise UserError(f"--patients must be at least 1 (got {patients})", exit_code=2)
    if seed < 0:
        raise UserError(f"--seed must be 0 or more (got {seed})", exit_code=2)
    if end < start:
        raise UserError(
            f"--end {end.isoformat()} is before --start {start.isoformat()}; "
            "give an end on or after the start",
            exit_code=2,
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".redflags-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(
            f"{out_dir}: cannot write there ({exc.strerror or exc}); choose another --out",
            exit_code=2,
        ) from None


def generate(
    out_dir: Path,
    *,
    patients: int,
    seed: int,
    start: date = DEFAULT_START,
    end: date = DEFAULT_END,
    fmt: str = "csv",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Generate `patients` patients into out_dir/<table>.<fmt>; returns rows per table.

    `progress` is called with the number of patients finished after each chunk.
    """
    out_dir = Path(out_dir)
    check_arguments(out_dir, patients, seed, start, end, fmt)
    profile = load_profile()
    start_day = int(np.datetime64(start, "D").astype(np.int64))
    end_day = int(np.datetime64(end, "D").astype(np.int64))
    patient_width = max(7, len(str(patients)))
    row_width = max(8, len(str(patients * 20)))
    writers = {
        t: _TableWriter(out_dir / f"{load_contract(t).file_prefix}.{fmt}", arrow_schema(t), fmt)
        for t in TABLES
    }
    # One background thread writes chunk k while chunk k+1 is generated: Arrow's
    # writers release the GIL, so the second core formats the files.
    background = ThreadPoolExecutor(max_workers=1)
    pending: Future[None] | None = None
    previous = 0  # patients in the chunk being written
    try:
        for chunk, chunk_start in enumerate(range(0, patients, chunk_size)):
            n = min(chunk_size, patients - chunk_start)
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(chunk,)))
            pop = generate_population(rng, n, start_day, end_day, profile)
            numbering = Numbering(
                first_patient=chunk_start + 1,
                first_encounter=writers["intake"].rows + 1,
                first_referral=writers["referrals"].rows + 1,
                patient_width=patient_width,
                row_width=row_width,
            )
            tables = {
                "intake": document_intake(rng, pop, profile, numbering),
                "referrals": generate_orders(rng, pop, profile, numbering, end_day=end_day),
                "diagnoses": generate_diagnoses(rng, pop, profile, numbering),
            }
            # drawn after the tables above, so that they stay what the seed gave before
            other = dataclasses.replace(
                numbering,
                first_referral=numbering.first_referral + len(tables["referrals"]["referral_id"]),
            )
            extra = {
                "referrals": generate_other_imaging(rng, pop, profile, other, end_day),
                "diagnoses": generate_complicating_diagnoses(
                    rng, pop, profile, numbering, start_day
                ),
            }
            tables["patients"] = generate_patients(rng, pop, profile, numbering, start_day, end_day)
            tables = {
                t: writers[t].table(
                    {c: pa.concat_arrays([a, extra[t][c]]) for c, a in columns.items()}
                    if t in extra
                    else columns
                )
                for t, columns in tables.items()
            }
            if pending is not None:
                pending.result()  # at most one chunk waits in memory
                if progress is not None:
                    progress(previous)
            pending = background.submit(_write_all, writers, tables)
            previous = n
        if pending is not None:
            pending.result()
            if progress is not None:
                progress(previous)
    except BaseException:
        background.shutdown(wait=True, cancel_futures=True)
        for writer in writers.values():
            writer.abandon()
        raise
    background.shutdown(wait=True)
    for writer in writers.values():
        writer.finish()
    return {t: w.rows for t, w in writers.items()}

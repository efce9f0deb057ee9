"""`redflags mentions`: the text engine run on annotated notes, so that a site can check it
on its own notes before trusting a run.

INPUT (CSV or Parquet) has a column `text`, a column `phrase` (the phrase to look for
in that row's text, any phrase) and optionally `gold` (what a reader decided: one of
the statuses). OUTPUT has the input's columns and `status`, read by the same cue
lexicon and the same engine code as scoring (pipelines/scoring/context.py). With
`gold`, negation is scored as a test: a row is a positive when gold is `negated`,
predicted positive when the status is `negated`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.config import DEFAULT_MEMORY_LIMIT
from pipelines.errors import UserError
from pipelines.outputs import csv_safe_select
from pipelines.scoring import context
from pipelines.scoring.engines import DEFAULT_ENGINE, check_engine
from pipelines.scoring.jobs import file_format, write_select
from pipelines.sqltext import literal
from pipelines.sqltext import path as sql_path
from pipelines.warehouse import refuse_file_access

REQUIRED = ("text", "phrase")
GOLD = "gold"
STATUS = "status"
INPUT_TABLE = "mentions_input"
OUTPUT_TABLE = "mentions_output"


@dataclass(frozen=True)
class NegationScore:
    """Negation as a test against gold: the confusion counts and what follows from them
    (None where a denominator is 0)."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p is not None and r is not None and p + r else None


@dataclass(frozen=True)
class MentionsResult:
    input: Path
    output: Path
    engine: str
    rows: int
    seconds: float  # reading the statuses, from the loaded input to the written output
    counts: dict[str, int]  # rows per status, every status listed
    agree: int | None  # rows whose status is their gold (None without gold)
    negation: NegationScore | None


def run_mentions(
    input_path: Path,
    output_path: Path,
    engine: str = DEFAULT_ENGINE,
    lexicon: context.Lexicon | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> MentionsResult:
    """Read every row's phrase in its text; write INPUT's columns and `status` to OUTPUT
    (DuckDB capped at `memory_limit`, the setting, as for `redflags score`)."""
    engine = check_engine(engine)
    out_kind = file_format(output_path, "output")
    lexicon = lexicon or context.load_lexicon()
    con = duckdb.connect(config={"memory_limit": memory_limit})
    try:
        con.execute("SET enable_progress_bar = false")  # the command prints its own lines
        has_gold = _load(con, input_path)
        start = time.perf_counter()
        con.execute(f"CREATE TEMP TABLE {OUTPUT_TABLE} AS {_with_statuses(con, engine, lexicon)}")
        select = f"SELECT * EXCLUDE (row_key) FROM {OUTPUT_TABLE} ORDER BY row_key"
        if out_kind == "csv":
            select = csv_safe_select(con, select)
        output_path.parent.mkdir(parents=True, exist_ok=True)
        write_select(con, select, output_path, out_kind)
        seconds = time.perf_counter() - start
        return _result(con, input_path, output_path, engine, seconds, has_gold)
    finally:
        con.close()


def _load(con: duckdb.DuckDBPyConnection, path: Path) -> bool:
    """INPUT as the table mentions_input (its rows in file order), checked; then no file
    access. Returns whether it has gold."""
    kind = file_format(path, "input")
    if not path.is_file():
        raise UserError(
            f"{path}: no such file; pass a CSV or Parquet file with columns text and phrase",
            exit_code=2,
        )
    reader = (
        f"read_csv({sql_path(path)}, header = true, all_varchar = true)"
        if kind == "csv"
        else f"read_parquet({sql_path(path)})"
    )
    try:
        con.execute(f"CREATE TABLE {INPUT_TABLE} AS SELECT * FROM {reader}")
    except duckdb.Error as exc:
        raise UserError(f"{path}: cannot read the file ({str(exc).splitlines()[0]})") from exc
    refuse_file_access(con)
    columns = [r[0] for r in con.execute(f"DESCRIBE {INPUT_TABLE}").fetchall()]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)}; the input needs text and phrase "
            "(and optionally gold)"
        )
    if STATUS in columns or "row_key" in columns:
        taken = STATUS if STATUS in columns else "row_key"
        raise UserError(f"{path}: has a column {taken}, which the output adds; rename it")
    if GOLD in columns:
        _check_gold(con, path)
    return GOLD in columns


def _gold_sql() -> str:
    return f"lower(trim(CAST({GOLD} AS VARCHAR)))"


def _check_gold(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    allowed = ", ".join(literal(s) for s in context.STATUSES)
    bad = con.execute(
        f"SELECT rowid + 1, CAST({GOLD} AS VARCHAR) FROM {INPUT_TABLE} "
        f"WHERE {GOLD} IS NULL OR {_gold_sql()} NOT IN ({allowed}) ORDER BY rowid LIMIT 1"
    ).fetchone()
    if bad:
        row, value = bad
        shown = "empty" if value is None or not value.strip() else repr(value)
        raise UserError(
            f"{path}, row {row}, column gold: {shown} is not one of "
            f"{', '.join(context.STATUSES)}; correct it or drop the row"
        )


def _with_statuses(con: duckdb.DuckDBPyConnection, engine: str, lexicon: context.Lexicon) -> str:
    """A SELECT of the input's columns, `status` and the row's key, by either engine."""
    rows = (
        f"(SELECT rowid AS row_key, CAST(text AS VARCHAR) AS text, "
        f"CAST(phrase AS VARCHAR) AS phrase FROM {INPUT_TABLE})"
    )
    if engine == "duckdb":
        context.register_phrases(con, rows, "phrase", lexicon)
        statuses = context.statuses_sql(lexicon, rows, "row_key", "text", phrase="phrase")
    else:
        import pandas as pd
        import pyarrow as pa

        frame = con.sql(f"SELECT * FROM {rows} ORDER BY row_key").to_arrow_table()
        text = pd.Series(pd.array(frame.column("text"), dtype="string[pyarrow]"))
        phrase = pd.Series(pd.array(frame.column("phrase"), dtype="string[pyarrow]"))
        status = context.statuses_pandas(text, phrase, lexicon)
        table = pa.table(
            {"row_key": frame.column("row_key"), STATUS: pa.array(status.array).cast(pa.string())}
        )
        con.register("mentions_statuses", table)
        statuses = "SELECT row_key, status FROM mentions_statuses"
    return (
        f"SELECT i.*, s.{STATUS}, i.rowid AS row_key FROM {INPUT_TABLE} AS i "
        f"JOIN ({statuses}) AS s ON i.rowid = s.row_key"
    )


def _result(
    con: duckdb.DuckDBPyConnection,
    input_path: Path,
    output_path: Path,
    engine: str,
    seconds: float,
    has_gold: bool,
) -> MentionsResult:
    counted = dict(
        con.execute(f"SELECT {STATUS}, count(*) FROM {OUTPUT_TABLE} GROUP BY {STATUS}").fetchall()
    )
    counts = {s: int(counted.get(s, 0)) for s in context.STATUSES}
    agree, negation = None, None
    if has_gold:
        gold, neg = _gold_sql(), f"'{context.NEGATED}'"
        found = con.execute(
            f"SELECT count(*) FILTER ({gold} = {STATUS}), "
            f"count(*) FILTER ({gold} = {neg} AND {STATUS} = {neg}), "
            f"count(*) FILTER ({gold} <> {neg} AND {STATUS} = {neg}), "
            f"count(*) FILTER ({gold} = {neg} AND {STATUS} <> {neg}), "
            f"count(*) FILTER ({gold} <> {neg} AND {STATUS} <> {neg}) "
            f"FROM {OUTPUT_TABLE}"
        ).fetchone()
        agree, negation = int(found[0]), NegationScore(*(int(n) for n in found[1:]))
    return MentionsResult(
        input_path, output_path, engine, sum(counts.values()), seconds, counts, agree, negation
    )


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_result(result: MentionsResult) -> list[str]:
    """The lines `redflags mentions` prints."""
    rate = f"{result.rows / result.seconds:,.0f} rows/s" if result.seconds > 0 else "n/a"
    lines = [
        f"read {result.rows:,} rows with the {result.engine} engine in "
        f"{result.seconds:.2f} s ({rate}): {result.input} -> {result.output}",
        "statuses: " + ", ".join(f"{s} {n:,}" for s, n in result.counts.items()),
    ]
    if result.negation is not None and result.agree is not None:
        share = result.agree / result.rows if result.rows else 0.0
        n = result.negation
        lines += [
            f"agree with gold: {result.agree:,} of {result.rows:,} rows ({share:.1%})",
            f"negation against gold: precision {_figure(n.precision)}, recall "
            f"{_figure(n.recall)}, F1 {_figure(n.f1)} "
            f"(TP {n.tp:,}, FP {n.fp:,}, FN {n.fn:,}, TN {n.tn:,})",
        ]
    return lines

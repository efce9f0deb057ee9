"""Readers for canonical input files: CSV (`,` `;` tab; optional BOM; UTF-8 or Latin-1),
`.csv.gz`, Parquet and JSON Lines, read in bounded chunks.

Every reader yields the same thing: an Arrow table of text columns named as in the
file's header (lower case), plus `source_row`, the line number in the file (the
row number for Parquet), so a quarantined value can be found again by the person
who sent the file. Lines that cannot be split into the header's fields are not
dropped: they come back in `Chunk.bad_lines` with the rule they broke.

CSV lines are split one line per record (a quoted value cannot span lines):
exports rarely hold newlines inside values, and a quote left open then swallows
only its own line instead of the rest of the file.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import itertools
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.sources.canonical import file_kind
from pipelines.validation.outcomes import RAGGED_ROW, UNBALANCED_QUOTES, FileRejected

DELIMITERS: tuple[str, ...] = (",", ";", "\t")
DEFAULT_CHUNK_BYTES = 64 * 2**20
_READ_BLOCK = 8 * 2**20
_BAD_LINES_SCHEMA = pa.schema(
    [("source_row", pa.int64()), ("rule", pa.string()), ("value", pa.string())]
)


@dataclass
class FileInfo:
    """What one pass over the bytes tells: size, content hash, encoding, warnings."""

    path: Path
    kind: str
    size: int
    sha256: str
    encoding: str = "utf-8"
    warnings: list[str] = field(default_factory=list)


@dataclass
class Chunk:
    """A bounded slice of a file: parsed rows (text) and the lines that could not be parsed."""

    rows: pa.Table
    bad_lines: pa.Table

    @property
    def n_read(self) -> int:
        return self.rows.num_rows + self.bad_lines.num_rows


def _open_binary(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def inspect_file(path: Path) -> FileInfo:
    """Hash the file and check its text encoding in one pass, so a bad file fails early.

    The hash is of the bytes on disk (the manifest compares it between runs); the
    encoding check reads the decompressed text, which also proves a gzip intact.
    """
    kind = file_kind(path)
    if kind is None:
        raise FileRejected("unsupported", f"{path}: not a .csv, .csv.gz, .parquet or .jsonl file")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_READ_BLOCK):
            digest.update(block)
    info = FileInfo(path=path, kind=kind, size=path.stat().st_size, sha256=digest.hexdigest())
    if kind == "parquet":
        return info
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    try:
        with _open_binary(path) as f:
            while block := f.read(_READ_BLOCK):
                if utf8:
                    try:
                        decoder.decode(block)
                    except UnicodeDecodeError:
                        utf8 = False
            if utf8:
                decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        utf8 = False
    except (OSError, EOFError, zlib.error) as exc:
        raise FileRejected(
            "corrupt",
            f"{path}: cannot be decompressed ({exc}); the file is damaged or not gzip — "
            "export it again",
        ) from exc
    if not utf8:
        info.encoding = "latin-1"
        info.warnings.append(
            f"{path.name}: not valid UTF-8, read as Latin-1; check accented characters "
            "and save the file as UTF-8 to silence this warning"
        )
    return info


def _open_text(info: FileInfo) -> io.TextIOBase:
    # utf-8-sig drops a byte-order mark if there is one and reads plain UTF-8 otherwise.
    encoding = "utf-8-sig" if info.encoding == "utf-8" else info.encoding
    return io.TextIOWrapper(_open_binary(info.path), encoding=encoding, newline=None)


def normalize_header(names: list[str]) -> list[str]:
    """Header names compared as the contracts spell them: trimmed, lower case."""
    return [n.strip().lstrip("\ufeff").strip().lower() for n in names]


def _sniff_delimiter(line: str) -> str:
    """The delimiter is whichever of `,` `;` tab occurs most in the header line."""
    counts = {d: line.count(d) for d in DELIMITERS}
    return max(counts, key=lambda d: counts[d])


@dataclass
class Header:
    columns: list[str]
    line: int  # line number of the header in the file (1 unless blank lines precede it)
    delimiter: str | None = None


def read_header(info: FileInfo) -> Header:
    """The column names of the file, without reading its rows."""
    if info.kind == "csv":
        with _open_text(info) as f:
            for line_no, line in enumerate(f, start=1):
                if line.strip():
                    delimiter = _sniff_delimiter(line)
                    names = next(csv.reader([line.rstrip("\n")], delimiter=delimiter))
                    return Header(normalize_header(names), line_no, delimiter)
        raise FileRejected(
            "empty", f"{info.path}: the file is empty; export it again with a header"
        )
    if info.kind == "parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.ParquetFile(info.path).schema_arrow.names
        except (OSError, pa.ArrowException) as exc:
            raise FileRejected(
                "corrupt", f"{info.path}: not a readable Parquet file ({exc}); export it again"
            ) from exc
        return Header(normalize_header(names), 0)
    # JSON Lines: the columns are the keys of the first record.
    for chunk in iter_chunks(info, None, max_bytes=1 << 16):
        return Header(chunk.rows.column_names[:-1], 0)
    raise FileRejected("empty", f"{info.path}: the file is empty; export it again")


def iter_chunks(
    info: FileInfo, header: Header | None, *, max_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[Chunk]:
    """The file's rows in chunks of about `max_bytes` of text each."""
    if info.kind == "csv":
        assert header is not None
        yield from _csv_chunks(info, header, max_bytes)
    elif info.kind == "parquet":
        yield from _parquet_chunks(info, max_bytes)
    else:
        yield from _jsonl_chunks(info, max_bytes)


def _empty_to_null(values: pa.Array) -> pa.Array:
    """Values trimmed; an empty value is NULL (CSV has no other way to say 'not recorded')."""
    trimmed = pc.utf8_trim_whitespace(values)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def _bad_lines(rows: np.ndarray, rule: str, text: pa.Array) -> pa.Table:
    return pa.table(
        {
            "source_row": pa.array(rows, pa.int64()),
            "rule": pa.array(np.full(len(rows), rule, dtype=object), pa.string()),
            "value": text,
        },
        schema=_BAD_LINES_SCHEMA,
    )


def _split_lines(lines: list[str], first_line: int, header: Header) -> Chunk:
    """Split a block of CSV lines into fields, vectorised; quoted lines go through `csv`."""
    names, delimiter = header.columns, header.delimiter or ","
    n_cols = len(names)
    text = pc.utf8_rtrim(pa.array(lines, pa.string()), characters="\r\n")
    line_no = np.arange(first_line, first_line + len(lines), dtype=np.int64)
    blank = pc.equal(pc.utf8_trim_whitespace(text), "").to_numpy(zero_copy_only=False)
    n_quotes = pc.count_substring(text, '"').to_numpy(zero_copy_only=False)
    unbalanced = ~blank & (n_quotes % 2 == 1)
    quoted = ~blank & (n_quotes > 0) & ~unbalanced
    plain = ~blank & (n_quotes == 0)

    parts: list[pa.Table] = []
    bad: list[pa.Table] = [
        _bad_lines(line_no[unbalanced], UNBALANCED_QUOTES, text.filter(unbalanced))
    ]

    plain_text = text.filter(plain)
    fields = pc.split_pattern(plain_text, delimiter)
    counts = pc.list_value_length(fields).to_numpy(zero_copy_only=False)
    fits = counts == n_cols
    plain_rows = line_no[plain]
    bad.append(_bad_lines(plain_rows[~fits], RAGGED_ROW, plain_text.filter(~fits)))
    flat = pc.list_flatten(fields.filter(fits))
    n_fit = int(fits.sum())
    columns = {
        name: flat.take(pa.array(np.arange(j, n_fit * n_cols, n_cols, dtype=np.int64)))
        for j, name in enumerate(names)
    }
    parts.append(pa.table({**columns, "source_row": pa.array(plain_rows[fits])}))

    if quoted.any():
        quoted_text = text.filter(quoted)
        records = list(csv.reader(quoted_text.to_pylist(), delimiter=delimiter))
        lengths = np.fromiter(map(len, records), dtype=np.int64, count=len(records))
        q_fits = lengths == n_cols
        q_rows = line_no[quoted]
        bad.append(_bad_lines(q_rows[~q_fits], RAGGED_ROW, quoted_text.filter(~q_fits)))
        kept = list(itertools.compress(records, q_fits))
        by_column = list(zip(*kept, strict=True)) if kept else [()] * n_cols
        parts.append(
            pa.table(
                {
                    **{name: pa.array(by_column[j], pa.string()) for j, name in enumerate(names)},
                    "source_row": pa.array(q_rows[q_fits]),
                }
            )
        )
    rows = pa.concat_tables(parts)
    rows = rows.take(pc.sort_indices(rows["source_row"]))
    rows = pa.table(
        {
            **{n: _empty_to_null(rows[n].combine_chunks()) for n in names},
            "source_row": rows["source_row"],
        }
    )
    bad_lines = pa.concat_tables(bad)
    return Chunk(rows, bad_lines.take(pc.sort_indices(bad_lines["source_row"])))


def _csv_chunks(info: FileInfo, header: Header, max_bytes: int) -> Iterator[Chunk]:
    if len(set(header.columns)) != len(header.columns):
        twice = sorted({c for c in header.columns if header.columns.count(c) > 1})
        raise FileRejected(
            "duplicate_columns",
            f"{info.path}, line {header.line}: column(s) {', '.join(twice)} appear more than "
            "once in the header; keep one of each",
        )
    with _open_text(info) as f:
        for _ in range(header.line):
            f.readline()
        next_line = header.line + 1
        while lines := f.readlines(max_bytes):
            yield _split_lines(lines, next_line, header)
            next_line += len(lines)


def _as_text(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A Parquet or JSON value as the text a CSV would hold (dates ISO, booleans true/false)."""
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.date32()) if _midnight_only(column) else column
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return _empty_to_null(pc.cast(column, pa.string()))
    if pa.types.is_nested(column.type):
        raise FileRejected(
            "nested", "nested values (lists or objects) cannot be read as table columns"
        )
    return pc.cast(column, pa.string())


def _midnight_only(column: pa.Array) -> bool:
    as_date = pc.cast(pc.cast(column, pa.date32()), column.type)
    return bool(pc.all(pc.or_kleene(pc.equal(as_date, column), pc.is_null(column))).as_py())


def _parquet_chunks(info: FileInfo, max_bytes: int) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(info.path)
        rows_per_batch = max(1, min(1_000_000, max_bytes // 200))
        first = 1
        for batch in parquet.iter_batches(batch_size=rows_per_batch):
            names = normalize_header(batch.schema.names)
            try:
                columns = {n: _as_text(batch.column(i)) for i, n in enumerate(names)}
            except FileRejected as exc:
                raise FileRejected(exc.reason, f"{info.path}: {exc.message}") from None
            rows = np.arange(first, first + batch.num_rows, dtype=np.int64)
            first += batch.num_rows
            yield Chunk(pa.table({**columns, "source_row": rows}), _BAD_LINES_SCHEMA.empty_table())
    except (OSError, pa.ArrowException) as exc:
        raise FileRejected(
            "corrupt", f"{info.path}: not a readable Parquet file ({exc}); export it again"
        ) from exc


def _jsonl_chunks(info: FileInfo, max_bytes: int) -> Iterator[Chunk]:
    """JSON Lines: one object per line; blank lines are skipped but keep their numbers."""
    import pyarrow.json as pj

    with _open_text(info) as f:
        next_line = 1
        while lines := f.readlines(max_bytes):
            text = pc.utf8_rtrim(pa.array(lines, pa.string()), characters="\r\n")
            line_no = np.arange(next_line, next_line + len(lines), dtype=np.int64)
            next_line += len(lines)
            filled = pc.invert(pc.equal(pc.utf8_trim_whitespace(text), "")).to_numpy(
                zero_copy_only=False
            )
            if not filled.any():
                continue
            payload = "\n".join(text.filter(filled).to_pylist()).encode("utf-8")
            try:
                table = pj.read_json(io.BytesIO(payload))
            except pa.ArrowInvalid as exc:
                raise FileRejected(
                    "corrupt",
                    f"{info.path}: not valid JSON Lines between lines {line_no[0]} and "
                    f"{line_no[-1]} ({exc}); each line must hold one JSON object",
                ) from exc
            names = normalize_header(table.column_names)
            try:
                columns = {n: _as_text(table.column(i)) for i, n in enumerate(names)}
            except FileRejected as exc:
                raise FileRejected(exc.reason, f"{info.path}: {exc.message}") from None
            yield Chunk(
                pa.table({**columns, "source_row": pa.array(line_no[filled])}),
                _BAD_LINES_SCHEMA.empty_table(),
            )

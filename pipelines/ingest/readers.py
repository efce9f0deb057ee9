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
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from pipelines.ingest.files import file_kind
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
    # Whether the text holds a carriage return: lines ending in CR or CRLF are split as
    # text (universal newlines); files without one are split as bytes, a copy cheaper.
    has_cr: bool = False


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
    try:
        with path.open("rb") as f:
            while block := f.read(_READ_BLOCK):
                digest.update(block)
    except OSError as exc:
        raise FileRejected(
            "unreadable",
            f"{path}: cannot be read ({exc.strerror}); check that it is a file you may read",
        ) from exc
    info = FileInfo(path=path, kind=kind, size=path.stat().st_size, sha256=digest.hexdigest())
    if kind == "parquet":
        return info
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    try:
        with _open_binary(path) as f:
            while block := f.read(_READ_BLOCK):
                info.has_cr = info.has_cr or b"\r" in block
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


# Bytes that can neither be nor start or end a whitespace character: printable ASCII
# other than the space. Every other byte (controls, space, DEL, and the bytes of
# multi-byte characters, which include Unicode's spaces) may be one.
_PRINTABLE_ASCII = (0x21, 0x7E)


def _printable_ends(values: pa.Array) -> bool:
    """Whether every non-NULL value is non-empty and begins and ends with a printable
    ASCII byte: then trimming whitespace changes nothing and no value is empty.

    Read off the offsets and the first and last byte of each value, without copying
    the text; an exact test for any data, not a guess (false means: trim and see).
    """
    if not (isinstance(values, pa.Array) and pa.types.is_string(values.type) and len(values)):
        return False
    offsets = np.frombuffer(values.buffers()[1], np.int32, len(values) + 1, 4 * values.offset)
    starts, ends = offsets[:-1], offsets[1:]
    if values.null_count:
        valid = values.is_valid().to_numpy(zero_copy_only=False)
        starts, ends = starts[valid], ends[valid]
    if len(starts) == 0:
        return True
    if not (ends > starts).all():
        return False
    data = np.frombuffer(values.buffers()[2], np.uint8)
    low, high = _PRINTABLE_ASCII
    first, last = data[starts], data[ends - 1]
    return bool(
        (first >= low).all()
        and (first <= high).all()
        and (last >= low).all()
        and (last <= high).all()
    )


def _empty_to_null(values: pa.Array) -> pa.Array:
    """Values trimmed; an empty value is NULL (CSV has no other way to say 'not recorded').

    Most columns hold no empty string (the CSV parser already made them NULL) and no
    value with whitespace at either end: such a column is returned as it is, without the
    copy that trimming makes (a second of CPU per million intake rows); the others are
    trimmed, and the NULLs only written when an empty value is there.
    """
    if _printable_ends(values):
        return values
    trimmed = pc.utf8_trim_whitespace(values)
    empty = pc.equal(trimmed, "")
    if not pc.any(empty).as_py():
        return trimmed
    return pc.if_else(empty, pa.scalar(None, pa.string()), trimmed)


def _bad_lines(rows: np.ndarray, rule: str, text: pa.Array) -> pa.Table:
    return pa.table(
        {
            "source_row": pa.array(rows, pa.int64()),
            "rule": pa.array(np.full(len(rows), rule, dtype=object), pa.string()),
            "value": text,
        },
        schema=_BAD_LINES_SCHEMA,
    )


def _csv_options(names: list[str], delimiter: str, on_ragged, line_column: bool = False) -> dict:
    """Arrow's CSV options for a block of lines: text columns, one line per record, an
    empty value NULL; `line_column` when each line starts with its number."""
    types = dict.fromkeys(names, pa.string())
    if line_column:
        names, types = ["__line", *names], {"__line": pa.int64(), **types}
    return {
        "read_options": pcsv.ReadOptions(column_names=names, block_size=1 << 22),
        "parse_options": pcsv.ParseOptions(
            delimiter=delimiter,
            newlines_in_values=False,
            ignore_empty_lines=True,
            invalid_row_handler=on_ragged,
        ),
        "convert_options": pcsv.ConvertOptions(
            column_types=types,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    }


def _lines_of(block: bytes) -> pa.LargeStringArray:
    """The lines of a block (UTF-8, without carriage returns or a final newline), each
    with its newline: a view of the block's bytes, not a copy."""
    data = np.frombuffer(block, np.uint8)
    offsets = np.concatenate(([0], np.flatnonzero(data == ord("\n")) + 1, [len(data)]))
    return pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(block)
    )


def _blank_and_unbalanced(
    block: bytes, lines: pa.LargeStringArray
) -> tuple[np.ndarray, np.ndarray]:
    """Per line: blank (whitespace only), and holding an odd number of quotes (not blank).

    Quotes are counted on the block's bytes (the positions of `"`, found once, against
    the line offsets): Arrow's per-line substring count costs four times as much. A line
    whose first byte is printable ASCII is not blank; only the others are trimmed to see.
    """
    data = np.frombuffer(block, np.uint8)
    offsets = np.frombuffer(lines.buffers()[1], np.int64, len(lines) + 1)
    quotes = np.flatnonzero(data == ord('"'))
    n_quotes = np.searchsorted(quotes, offsets[1:]) - np.searchsorted(quotes, offsets[:-1])
    starts, ends = offsets[:-1], offsets[1:]
    low, high = _PRINTABLE_ASCII
    first = data[np.minimum(starts, max(len(data) - 1, 0))] if len(data) else starts
    maybe_blank = (ends == starts) | (first < low) | (first > high)
    blank = np.zeros(len(lines), dtype=bool)
    if maybe_blank.any():
        checked = lines.filter(pa.array(maybe_blank))
        blank[maybe_blank] = pc.equal(pc.utf8_trim_whitespace(checked), "").to_numpy(
            zero_copy_only=False
        )
    return blank, ~blank & (n_quotes % 2 == 1)


def _split_block(block: bytes, first_line: int, header: Header) -> tuple[Chunk, int]:
    """Split a block of whole CSV lines into fields; the chunk and its number of lines.

    Most blocks hold no blank line, no line with an odd number of quotes and no line
    of the wrong field count: Arrow then parses the block as it is, and row i is line
    `first_line + i`. Any other block goes the way that numbers each line first.
    """
    lines = _lines_of(block)
    blank, unbalanced = _blank_and_unbalanced(block, lines)
    if not blank.any() and not unbalanced.any():
        chunk = _parse_whole_lines(block, len(lines), first_line, header)
        if chunk is not None:
            return chunk, len(lines)
    text = pc.cast(pc.utf8_rtrim(lines, characters="\r\n"), pa.string())
    return _split_lines(text, first_line, header, blank, unbalanced), len(lines)


def _parse_whole_lines(block: bytes, n_lines: int, first_line: int, header: Header) -> Chunk | None:
    """The block's rows, numbered by position; None when a line is ragged or Arrow
    cannot parse the block (the numbering way then says which line, or rejects it)."""
    names = header.columns
    ragged: list[object] = []

    def keep_ragged(row) -> str:
        ragged.append(row)
        return "skip"

    try:
        parsed = pcsv.read_csv(
            pa.BufferReader(block), **_csv_options(names, header.delimiter or ",", keep_ragged)
        )
    except pa.ArrowInvalid:
        return None
    if ragged or parsed.num_rows != n_lines:
        return None
    rows = pa.table(
        {
            **{n: _empty_to_null(parsed[n].combine_chunks()) for n in names},
            "source_row": np.arange(first_line, first_line + parsed.num_rows, dtype=np.int64),
        }
    )
    return Chunk(rows, _BAD_LINES_SCHEMA.empty_table())


def _split_lines(
    text: pa.Array, first_line: int, header: Header, blank: np.ndarray, unbalanced: np.ndarray
) -> Chunk:
    """Split CSV lines into fields with Arrow's parser, keeping each line's number.

    Each line is prefixed with its number as an extra first field, so parsed rows
    carry their line number and a line Arrow cannot split (wrong field count) is
    handed back with its number. A line with an odd number of quotes never reaches
    the parser: its quote would run into the next line.
    """
    names, delimiter = header.columns, header.delimiter or ","
    line_no = np.arange(first_line, first_line + len(text), dtype=np.int64)
    parse = ~blank & ~unbalanced
    bad = [_bad_lines(line_no[unbalanced], UNBALANCED_QUOTES, text.filter(unbalanced))]

    # "<line><delimiter><text>\n" per line: the separator goes between the inputs, so the
    # newline is appended by joining with an empty string.
    numbered = pc.binary_join_element_wise(
        pc.binary_join_element_wise(
            pc.cast(pa.array(line_no[parse]), pa.string()), text.filter(parse), delimiter
        ),
        "",
        "\n",
    )
    ragged: list[str] = []

    def keep_ragged(row) -> str:
        ragged.append(row.text)
        return "skip"

    payload = _joined_bytes(numbered)
    if not payload:
        empty = {n: pa.array([], pa.string()) for n in names}
        return Chunk(
            pa.table({**empty, "source_row": pa.array([], pa.int64())}), pa.concat_tables(bad)
        )
    parsed = pcsv.read_csv(
        pa.BufferReader(payload), **_csv_options(names, delimiter, keep_ragged, line_column=True)
    )
    if ragged:
        ragged_text = pa.array(ragged, pa.string())
        prefix_and_rest = pc.split_pattern(ragged_text, delimiter, max_splits=1)
        numbers = pc.cast(pc.list_element(prefix_and_rest, 0), pa.int64()).to_numpy()
        rest = pc.list_element(prefix_and_rest, 1)
        bad.append(_bad_lines(numbers, RAGGED_ROW, rest))
    rows = pa.table(
        {
            **{n: _empty_to_null(parsed[n].combine_chunks()) for n in names},
            "source_row": parsed["__line"].combine_chunks(),
        }
    )
    bad_lines = pa.concat_tables(bad)
    return Chunk(rows, bad_lines.take(pc.sort_indices(bad_lines["source_row"])))


def _joined_bytes(strings: pa.Array) -> pa.Buffer | None:
    """The concatenated UTF-8 bytes of a string array, without copying each value."""
    if len(strings) == 0:
        return None
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)
    start, end = offsets[strings.offset], offsets[strings.offset + len(strings)]
    return strings.buffers()[2][start:end]


def _csv_chunks(info: FileInfo, header: Header, max_bytes: int) -> Iterator[Chunk]:
    if len(set(header.columns)) != len(header.columns):
        twice = sorted({c for c in header.columns if header.columns.count(c) > 1})
        raise FileRejected(
            "duplicate_columns",
            f"{info.path}, line {header.line}: column(s) {', '.join(twice)} appear more than "
            "once in the header; keep one of each",
        )
    next_line = header.line + 1
    for block in _line_blocks(info, header, max_bytes):
        try:
            chunk, n_lines = _split_block(block, next_line, header)
        except pa.ArrowInvalid as exc:
            n_lines = block.count(b"\n") + 1
            raise FileRejected(
                "corrupt",
                f"{info.path}: cannot be read as CSV between lines {next_line} and "
                f"{next_line + n_lines - 1} ({exc}); export it again",
            ) from exc
        yield chunk
        next_line += n_lines


def _line_blocks(info: FileInfo, header: Header, max_bytes: int) -> Iterator[bytes]:
    """The lines after the header in blocks of about `max_bytes`: whole lines, UTF-8,
    no carriage return, no final newline.

    A UTF-8 file without carriage returns is read as bytes, as it is; any other is
    decoded (Latin-1; CR and CRLF line ends made newlines) and encoded as UTF-8.
    """
    if info.encoding == "utf-8" and not info.has_cr:
        with _open_binary(info.path) as f:
            for _ in range(header.line):
                f.readline()
            while block := f.read(max_bytes):
                if not block.endswith(b"\n"):
                    block += f.readline()
                yield block.removesuffix(b"\n")
        return
    with _open_text(info) as f:
        for _ in range(header.line):
            f.readline()
        while text := f.read(max_bytes):
            if not text.endswith("\n"):
                text += f.readline()
            yield text.removesuffix("\n").encode("utf-8")


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
            text = pc.utf8_rtrim(lines, characters="\r\n")
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

"""Readers for canonical input files: CSV (`,` `;` tab; optional BOM; UTF-8, UTF-16 or
Latin-1), `.tsv`, `.csv.gz`, Parquet and JSON Lines, read in bounded chunks.

Every reader yields the same thing: an Arrow table of text columns named as in the
file's header (lower case), plus `source_row`, the line number in the file (the
row number for Parquet), so a quarantined value can be found again by the person
who sent the file. Lines that cannot be split into the header's fields are not
dropped: they come back in `Chunk.bad_lines` with the rule they broke.

CSV lines are split one line per record (a quoted value cannot span lines):
exports rarely hold newlines inside values, and a quote left open then swallows
only its own line instead of the rest of the file.

One bad value never costs the file: a line or value longer than `MAX_LINE_BYTES`, a
list or object where one value belongs, a JSON line that is no object are handed back
as bad lines, naming the column where there is one. What a file is comes from its
bytes, not its name (a zip archive or a UTF-16 text named `.csv` is said to be one).
The rows read are the bytes hashed: each reader hashes what it reads (Parquet: a copy
it hashes) and rejects the file if that is not the content `inspect_file` hashed.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import hashlib
import io
import json
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from pipelines.ingest.files import file_kind
from pipelines.validation.outcomes import (
    JSON_OBJECT,
    MAX_LENGTH,
    RAGGED_ROW,
    SCALAR,
    UNBALANCED_QUOTES,
    UNIQUE_KEYS,
    FileRejected,
)

DELIMITERS: tuple[str, ...] = (",", ";", "\t")
DEFAULT_CHUNK_BYTES = 64 * 2**20
# The longest line (CSV, JSON Lines) or value (Parquet, JSON) read as a row: a longer one
# is quarantined (rule max_length), its row alone. No field of an intake export comes
# near it; Arrow's parse blocks are larger, so a line it takes always fits one.
MAX_LINE_BYTES = 2**20
# How much of an unreadable line or value the quarantine keeps.
SHOWN_CHARS = 200
_READ_BLOCK = 8 * 2**20
_BAD_LINES_SCHEMA = pa.schema(
    [
        ("source_row", pa.int64()),
        ("column_name", pa.string()),
        ("rule", pa.string()),
        ("value", pa.string()),
    ]
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
    # Gzip-compressed, as its first bytes say (whatever its name says).
    compressed: bool = False


@dataclass
class Chunk:
    """A bounded slice of a file: parsed rows (text) and the lines that could not be parsed."""

    rows: pa.Table
    bad_lines: pa.Table

    @property
    def n_read(self) -> int:
        """Rows read: a bad line counts once, however many of its values broke a rule."""
        bad = self.bad_lines["source_row"]
        return self.rows.num_rows + (pc.count_distinct(bad).as_py() if len(bad) else 0)


# What a file is, by its first bytes: (magic, name, what to do when a text was expected).
_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"PK\x03\x04", "a zip archive (an .xlsx workbook is one)", "export the table as CSV, or "
     "unzip the file into the input directory"),
    (b"PK\x05\x06", "an empty zip archive", "export the table again"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook", "export the sheet as CSV"),
    (b"PAR1", "a Parquet file", "name it .parquet"),
    (b"%PDF", "a PDF document", "export the table as CSV"),
)  # fmt: skip
_GZIP_MAGIC = b"\x1f\x8b"
# Byte-order marks of the encodings read besides UTF-8 (UTF-32 first: its LE mark
# begins with UTF-16's).
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_KIND_NAMES = {"csv": "CSV text", "jsonl": "JSON Lines", "parquet": "a Parquet file"}


def _what_it_is(head: bytes) -> tuple[str, str] | None:
    """(what the file is, what to do) when its first bytes say it is not text."""
    for magic, name, todo in _MAGIC:
        if head.startswith(magic):
            return name, todo
    return None


def _open_binary(info: FileInfo) -> io.BufferedIOBase:
    f = info.path.open("rb")
    return gzip.GzipFile(fileobj=f, mode="rb") if info.compressed else f


class _HashingReader(io.RawIOBase):
    """A file read front to back, hashing every byte it hands on (and, when asked, the
    bytes nobody read): what a reader parsed is then known to be what it hashed."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._file.readinto(buffer)
        if n:
            self._digest.update(memoryview(buffer)[:n])
        return n

    def hexdigest_to_end(self) -> str:
        while block := self._file.read(_READ_BLOCK):
            self._digest.update(block)
        return self._digest.hexdigest()

    def release(self) -> None:
        """Close the file (closing the reader, as a wrapper does, leaves it to hash on)."""
        self._file.close()


def _changed(info: FileInfo) -> FileRejected:
    return FileRejected(
        "changed",
        f"{info.path}: changed while it was being read (its content differs from the "
        "content hashed before); nothing of it is stored: run again once nothing writes to it",
    )


@contextlib.contextmanager
def _hashed_binary(info: FileInfo) -> Iterator[io.BufferedIOBase]:
    """The file's bytes (decompressed if gzip), hashed as they are read: when the caller
    is done without error, a file whose bytes are not those `inspect_file` hashed is
    rejected, so no row is ever stored under a hash of other content."""
    raw = _HashingReader(info.path)
    try:
        buffered = io.BufferedReader(raw, _READ_BLOCK)
        yield gzip.GzipFile(fileobj=buffered, mode="rb") if info.compressed else buffered
        if raw.hexdigest_to_end() != info.sha256:
            raise _changed(info)
    finally:
        raw.release()


def inspect_file(path: Path) -> FileInfo:
    """Hash the file and check what it is and its text encoding, so a bad file fails early.

    The hash is of the bytes on disk (the manifest compares it between runs); what the
    file is comes from its first bytes (a zip archive named .csv is said to be one); the
    encoding check reads the decompressed text, which also proves a gzip intact.
    """
    kind = file_kind(path)
    if kind is None:
        raise FileRejected(
            "unsupported", f"{path}: not a .csv, .tsv, .csv.gz, .parquet or .jsonl file"
        )
    digest = hashlib.sha256()
    head = b""
    try:
        with path.open("rb") as f:
            while block := f.read(_READ_BLOCK):
                head = head or block[:16]
                digest.update(block)
    except OSError as exc:
        raise FileRejected(
            "unreadable",
            f"{path}: cannot be read ({exc.strerror}); check that it is a file you may read",
        ) from exc
    info = FileInfo(path=path, kind=kind, size=path.stat().st_size, sha256=digest.hexdigest())
    found = _what_it_is(head)
    if kind == "parquet":
        if head and not head.startswith(b"PAR1"):
            what = found[0] if found else (
                "gzip-compressed" if head.startswith(_GZIP_MAGIC) else "not Parquet (no PAR1 "
                "mark at its start; text named .parquet?)"
            )  # fmt: skip
            raise FileRejected(
                "not_parquet", f"{path}: is {what}, not a Parquet file; export it again"
            )
        return info
    if found is not None:
        what, todo = found
        raise FileRejected("not_text", f"{path}: is {what}, not {_KIND_NAMES[kind]}; {todo}")
    info.compressed = head.startswith(_GZIP_MAGIC)
    named_gz = path.name.lower().endswith(".gz")
    if info.compressed and not named_gz:
        info.warnings.append(
            f"{path.name}: is gzip-compressed though its name does not end in .gz; read "
            "decompressed (name it .gz to silence this warning)"
        )
    elif named_gz and not info.compressed and head:
        info.warnings.append(f"{path.name}: is not gzip-compressed though named .gz; read as it is")
    _check_encoding(info)
    return info


def _check_encoding(info: FileInfo) -> None:
    """UTF-8, or UTF-16/32 by their byte-order mark, else Latin-1 with a warning."""
    path = info.path
    try:
        with _open_binary(info) as f:
            first = f.read(_READ_BLOCK)
            encoding = next((name for bom, name in _BOMS if first.startswith(bom)), "utf-8")
            decoder = codecs.getincrementaldecoder(encoding)()
            valid = True
            block = first
            while block:
                info.has_cr = info.has_cr or b"\r" in block
                if valid:
                    try:
                        decoder.decode(block)
                    except UnicodeDecodeError:
                        valid = False
                block = f.read(_READ_BLOCK)
            if valid:
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    valid = False
    except (OSError, EOFError, zlib.error) as exc:
        raise FileRejected(
            "corrupt",
            f"{path}: cannot be decompressed ({exc}); the file is damaged or not gzip — "
            "export it again",
        ) from exc
    if encoding != "utf-8":
        if not valid:
            raise FileRejected(
                "encoding",
                f"{path}: starts with a {encoding.upper()} byte-order mark but is not valid "
                f"{encoding.upper()} text; save it as UTF-8 and export it again",
            )
        info.encoding = encoding  # read as text, whatever its line ends
        info.warnings.append(
            f"{path.name}: is {encoding.upper()} text, read as such; save it as UTF-8 to "
            "silence this warning"
        )
    elif not valid:
        info.encoding = "latin-1"
        info.warnings.append(
            f"{path.name}: not valid UTF-8, read as Latin-1; check accented characters "
            "and save the file as UTF-8 to silence this warning"
        )


def _open_text(info: FileInfo, binary: io.BufferedIOBase | None = None) -> io.TextIOBase:
    # utf-8-sig drops a byte-order mark if there is one and reads plain UTF-8 otherwise;
    # the utf-16 and utf-32 codecs drop theirs.
    encoding = "utf-8-sig" if info.encoding == "utf-8" else info.encoding
    return io.TextIOWrapper(
        binary if binary is not None else _open_binary(info), encoding=encoding, newline=None
    )


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
    """The column names of the file, without reading its rows; two columns whose names
    differ only in case reject it (which one would be the column?)."""
    header = _read_header(info)
    reject_duplicate_columns(info.path, header.columns, header.line)
    return header


def reject_duplicate_columns(path: Path, names: list[str], line: int = 0) -> None:
    if len(set(names)) == len(names):
        return
    twice = sorted({c for c in names if names.count(c) > 1})
    where = f", line {line}" if line else ""
    raise FileRejected(
        "duplicate_columns",
        f"{path}{where}: column(s) {', '.join(twice)} appear more than once in the header "
        "(names compared in lower case); keep one of each",
    )


def _read_header(info: FileInfo) -> Header:
    if info.kind == "csv":
        with _open_text(info) as f:
            for line_no, line in enumerate(f, start=1):
                if line.strip():
                    tsv = info.path.name.lower().endswith((".tsv", ".tsv.gz"))
                    delimiter = "\t" if tsv else _sniff_delimiter(line)
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
    # JSON Lines: the columns are the keys of the first records that could be read.
    bad_lines = 0
    for chunk in iter_chunks(info, None, max_bytes=1 << 16):
        if chunk.rows.num_rows:
            return Header(chunk.rows.column_names[:-1], 0)
        bad_lines += chunk.bad_lines.num_rows
    if bad_lines:
        raise FileRejected(
            "no_rows",
            f"{info.path}: no line of it could be read as a JSON object of single values; "
            'each line must hold one object such as {"patient_id": "P1", ...}',
        )
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


def _bad_lines(
    rows: np.ndarray, rule: str, text: pa.Array | list, columns: list | None = None
) -> pa.Table:
    return pa.table(
        {
            "source_row": pa.array(rows, pa.int64()),
            "column_name": pa.array(columns or [None] * len(rows), pa.string()),
            "rule": pa.array(np.full(len(rows), rule, dtype=object), pa.string()),
            "value": pa.array(text, pa.string()) if isinstance(text, list) else text,
        },
        schema=_BAD_LINES_SCHEMA,
    )


def shown(text: str) -> str:
    """An overlong value as the quarantine keeps it: its start and its size."""
    if len(text) <= SHOWN_CHARS:
        return text
    # "..." rather than an ellipsis: values are stored NFKC-normalised, which spells it so
    return f"{text[:SHOWN_CHARS]}... ({len(text.encode('utf-8')):,} bytes)"


def _too_long_lines(text: pa.Array, line_no: np.ndarray, header: Header) -> pa.Table:
    """Lines longer than MAX_LINE_BYTES, each named by its longest field's column when
    the line splits into the header's fields (rare lines: split here, one by one)."""
    columns, values = [], []
    for line in text.to_pylist():
        fields = _fields_of(line, header)
        if fields is None:
            columns.append(None)
            values.append(shown(line))
        else:
            longest = max(range(len(fields)), key=lambda i: len(fields[i] or ""))
            columns.append(header.columns[longest])
            values.append(shown(fields[longest] or ""))
    return _bad_lines(line_no, MAX_LENGTH, values, columns)


def _fields_of(line: str, header: Header) -> list[str | None] | None:
    """One line split into the header's fields by Arrow's parser, or None if it does not."""
    data = line.encode("utf-8")
    names = [f"c{i}" for i in range(len(header.columns))]
    try:
        parsed = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(column_names=names, block_size=len(data) + (1 << 16)),
            parse_options=pcsv.ParseOptions(
                delimiter=header.delimiter or ",",
                newlines_in_values=False,
                invalid_row_handler=lambda row: "skip",
            ),
            convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
        )
    except pa.ArrowInvalid:
        return None
    if parsed.num_rows != 1:
        return None
    return [parsed[n][0].as_py() for n in names]


def _csv_options(names: list[str], delimiter: str, on_ragged, line_column: bool = False) -> dict:
    """Arrow's CSV options for a block of lines: text columns, one line per record, an
    empty value NULL; `line_column` when each line starts with its number."""
    types = dict.fromkeys(names, pa.string())
    if line_column:
        names, types = ["__line", *names], {"__line": pa.int64(), **types}
    return {
        "read_options": pcsv.ReadOptions(
            column_names=names, block_size=max(1 << 22, 2 * MAX_LINE_BYTES)
        ),
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
    offsets = np.frombuffer(lines.buffers()[1], np.int64, len(lines) + 1)
    too_long = np.diff(offsets) > MAX_LINE_BYTES + 1  # + its newline
    if not blank.any() and not unbalanced.any() and not too_long.any():
        chunk = _parse_whole_lines(block, len(lines), first_line, header)
        if chunk is not None:
            return chunk, len(lines)
    text = pc.cast(pc.utf8_rtrim(lines, characters="\r\n"), pa.string())
    return _split_lines(text, first_line, header, blank, unbalanced & ~too_long, too_long), len(
        lines
    )


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
    text: pa.Array,
    first_line: int,
    header: Header,
    blank: np.ndarray,
    unbalanced: np.ndarray,
    too_long: np.ndarray | None = None,
) -> Chunk:
    """Split CSV lines into fields with Arrow's parser, keeping each line's number.

    Each line is prefixed with its number as an extra first field, so parsed rows
    carry their line number and a line Arrow cannot split (wrong field count) is
    handed back with its number. A line with an odd number of quotes never reaches
    the parser: its quote would run into the next line. A line longer than
    MAX_LINE_BYTES (`too_long`) does not either: it is handed back with its column.
    """
    names, delimiter = header.columns, header.delimiter or ","
    line_no = np.arange(first_line, first_line + len(text), dtype=np.int64)
    if too_long is None:
        too_long = np.zeros(len(text), dtype=bool)
    parse = ~blank & ~unbalanced & ~too_long
    bad = [_bad_lines(line_no[unbalanced], UNBALANCED_QUOTES, text.filter(unbalanced))]
    if too_long.any():
        bad.append(_too_long_lines(text.filter(too_long), line_no[too_long], header))

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
    reject_duplicate_columns(info.path, header.columns, header.line)
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
        with _hashed_binary(info) as f:
            for _ in range(header.line):
                f.readline()
            while block := f.read(max_bytes):
                if not block.endswith(b"\n"):
                    block += f.readline()
                yield block.removesuffix(b"\n")
        return
    with _hashed_binary(info) as binary, _open_text(info, binary) as f:
        for _ in range(header.line):
            f.readline()
        while text := f.read(max_bytes):
            if not text.endswith("\n"):
                text += f.readline()
            yield text.removesuffix("\n").encode("utf-8")


def _timestamps_as_text(column: pa.Array) -> pa.Array:
    """A timestamp at midnight is the date it names (`2024-01-05`); any other keeps its
    time (`2024-01-05T10:30:00.000000`), so the contract's date rule quarantines that row alone."""
    as_date = pc.cast(column, pa.date32())
    midnight = pc.equal(pc.cast(as_date, column.type), column)
    with_time = pc.replace_substring(pc.cast(column, pa.string()), " ", "T", max_replacements=1)
    return pc.if_else(midnight, pc.cast(as_date, pa.string()), with_time)


def _nested_as_text(values: pa.Array) -> list[str]:
    return [shown(json.dumps(v, default=str, ensure_ascii=False)) for v in values.to_pylist()]


def _text_table(table: pa.Table, source_row: np.ndarray) -> Chunk:
    """A Parquet or JSON table as the text a CSV would hold (dates ISO, booleans
    true/false), each value checked alone: a list or object (rule scalar) or a value
    longer than MAX_LINE_BYTES (rule max_length) sends its row, with its column, to the
    bad lines; the other rows are kept."""
    names = normalize_header(table.column_names)
    texts: dict[str, pa.Array] = {}
    bad: list[pa.Table] = []
    failed = np.zeros(table.num_rows, dtype=bool)
    for name, column in zip(names, table.columns, strict=True):
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if pa.types.is_nested(column.type):
            present = column.is_valid().to_numpy(zero_copy_only=False)
            if present.any():
                values = _nested_as_text(column.filter(pa.array(present)))
                bad.append(_bad_lines(source_row[present], SCALAR, values, [name] * len(values)))
                failed |= present
            texts[name] = pa.nulls(table.num_rows, pa.string())
            continue
        if pa.types.is_timestamp(column.type):
            column = _timestamps_as_text(column)
        text = pc.cast(column, pa.string())
        if pa.types.is_string(text.type):
            text = _empty_to_null(text)
        long = pc.fill_null(pc.greater(pc.binary_length(text), MAX_LINE_BYTES), False)
        long = long.to_numpy(zero_copy_only=False)
        if long.any():
            values = [shown(v) for v in text.filter(pa.array(long)).to_pylist()]
            bad.append(_bad_lines(source_row[long], MAX_LENGTH, values, [name] * len(values)))
            failed |= long
        texts[name] = text
    rows = pa.table({**texts, "source_row": pa.array(source_row, pa.int64())})
    if failed.any():
        rows = rows.filter(pa.array(~failed))
    bad_lines = pa.concat_tables([_BAD_LINES_SCHEMA.empty_table(), *bad])
    return Chunk(rows, bad_lines.take(pc.sort_indices(bad_lines["source_row"])))


@contextlib.contextmanager
def _parquet_snapshot(info: FileInfo) -> Iterator[Path]:
    """A private copy of a Parquet file, hashed as it is copied: Parquet is read out of
    order (footer first), so the copy is what is read, and it must be what was hashed."""
    with tempfile.TemporaryDirectory(prefix="redflags-read-") as tmp:
        copy = Path(tmp) / "snapshot.parquet"
        digest = hashlib.sha256()
        with info.path.open("rb") as source, copy.open("wb") as target:
            while block := source.read(_READ_BLOCK):
                digest.update(block)
                target.write(block)
        if digest.hexdigest() != info.sha256:
            raise _changed(info)
        yield copy


def _parquet_chunks(info: FileInfo, max_bytes: int) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    with _parquet_snapshot(info) as snapshot:
        try:
            parquet = pq.ParquetFile(snapshot)
            reject_duplicate_columns(info.path, normalize_header(parquet.schema_arrow.names))
            rows_per_batch = max(1, min(1_000_000, max_bytes // 200))
            first = 1
            for batch in parquet.iter_batches(batch_size=rows_per_batch):
                rows = np.arange(first, first + batch.num_rows, dtype=np.int64)
                first += batch.num_rows
                yield _text_table(pa.Table.from_batches([batch]), rows)
        except (OSError, pa.ArrowException) as exc:
            raise FileRejected(
                "corrupt", f"{info.path}: not a readable Parquet file ({exc}); export it again"
            ) from exc


# Types Arrow's JSON reader gives a column whose values a CSV would hold as the same
# text; any other column (numbers with a fraction or exponent, whose text Arrow would
# rewrite, lists, objects, columns of mixed kinds) sends its chunk line by line.
_PLAIN_JSON_TYPES = (pa.types.is_string, pa.types.is_int64, pa.types.is_boolean,
                     pa.types.is_null, pa.types.is_timestamp)  # fmt: skip


def _jsonl_chunks(info: FileInfo, max_bytes: int) -> Iterator[Chunk]:
    """JSON Lines: one object per line; blank lines are skipped but keep their numbers.

    Arrow parses a chunk whole when it can and every column is plain; otherwise each
    line is parsed alone, and a line that is no object, or holds a list, an object or an
    overlong value, is a bad line; the other lines are rows.
    """
    import pyarrow.json as pj

    with _hashed_binary(info) as binary, _open_text(info, binary) as f:
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
            kept = text.filter(filled).to_pylist()
            payload = "\n".join(kept).encode("utf-8")
            try:
                table = pj.read_json(io.BytesIO(payload))
            except pa.ArrowInvalid:
                table = None
            plain = (
                table is not None
                and table.num_rows == len(kept)
                and all(any(is_(t) for is_ in _PLAIN_JSON_TYPES) for t in table.schema.types)
                and len(set(normalize_header(table.column_names))) == table.num_columns
            )
            if plain:
                yield _text_table(table, line_no[filled])
            else:
                yield _json_lines_one_by_one(kept, line_no[filled])


def _json_value_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_lines_one_by_one(lines: list[str], line_no: np.ndarray) -> Chunk:
    """Each line parsed alone; numbers keep the text they were written with (`104.0`)."""
    rows: list[dict[str, str | None]] = []
    numbers: list[int] = []
    bad: list[tuple[int, str | None, str, str]] = []
    for line, number in zip(lines, line_no.tolist(), strict=True):
        try:
            record = json.loads(line, parse_int=str, parse_float=str, parse_constant=str)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            bad.append((number, None, JSON_OBJECT, shown(line)))
            continue
        row: dict[str, str | None] = {}
        problems = []
        for key, value in record.items():
            name = normalize_header([key])[0]
            if name in row:
                problems.append((number, name, UNIQUE_KEYS, shown(key)))
            elif isinstance(value, dict | list):
                problems.append((number, name, SCALAR, shown(json.dumps(value))))
            elif len((text := _json_value_text(value) or "").encode("utf-8")) > MAX_LINE_BYTES:
                problems.append((number, name, MAX_LENGTH, shown(text)))
            row[name] = None
            if not problems:
                row[name] = _json_value_text(value)
        if problems:
            bad.extend(problems)
        else:
            rows.append(row)
            numbers.append(number)
    names = list(dict.fromkeys(name for row in rows for name in row))
    columns = {
        name: _empty_to_null(pa.array([row.get(name) for row in rows], pa.string()))
        for name in names
    }
    table = pa.table({**columns, "source_row": pa.array(numbers, pa.int64())})
    if bad:
        n, c, r, v = zip(*bad, strict=True)
        bad_lines = pa.table(
            {"source_row": n, "column_name": c, "rule": r, "value": v}, schema=_BAD_LINES_SCHEMA
        )
    else:
        bad_lines = _BAD_LINES_SCHEMA.empty_table()
    return Chunk(table, bad_lines)

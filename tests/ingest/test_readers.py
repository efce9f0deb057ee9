"""The CSV reader's two ways of splitting a block of lines agree, and line ends do not matter.

A block with no blank line, no line of odd quotes and no ragged line is parsed whole
and numbered by position; any other block prefixes each line with its number first.
The second way is the reference: for random blocks, both must give the same rows,
the same line numbers and the same bad lines. Files that differ only in their line
ends (LF, CRLF, CR) or encoding must read the same. Chunks are read one ahead, in a
thread, and still come in order.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.ingest.prepare import read_ahead
from pipelines.ingest.readers import (
    Header,
    _blank_and_unbalanced,
    _empty_to_null,
    _lines_of,
    _split_block,
    _split_lines,
    inspect_file,
    iter_chunks,
    read_header,
)

NAMES = ["encounter_id", "sex", "chief_complaint"]
HEADER = Header(NAMES, 1, ",")

# Field text drawn from characters that matter to the parser: the delimiter, quotes,
# spaces around values, a tab and a non-ASCII letter.
FIELD = st.text(alphabet='ab ,"\té', max_size=6)
LINE = st.one_of(
    st.lists(FIELD, min_size=3, max_size=3).map(",".join),  # mostly well-formed
    st.lists(FIELD, min_size=1, max_size=5).map(",".join),  # any field count
    st.sampled_from(["", "  ", "\t"]),  # blank
    st.lists(st.sampled_from(["a", '"b,c"', '" d "', "", "é"]), min_size=3, max_size=3).map(
        ",".join
    ),  # quoted values, balanced
)


def by_numbering(lines: list[str], first_line: int):
    """The reference way: every line numbered before Arrow parses it."""
    text = pa.array(lines, pa.string())
    blank = pc.equal(pc.utf8_trim_whitespace(text), "").to_numpy(zero_copy_only=False)
    odd = (pc.count_substring(text, '"').to_numpy(zero_copy_only=False) % 2 == 1) & ~blank
    return _split_lines(text, first_line, HEADER, blank, odd)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(LINE, min_size=1, max_size=12), first_line=st.integers(2, 10**6))
def test_a_block_parsed_whole_equals_the_block_numbered_line_by_line(
    lines: list[str], first_line: int
):
    block = "\n".join(lines).encode("utf-8")
    chunk, n_lines = _split_block(block, first_line, HEADER)
    expected = by_numbering(lines, first_line)
    assert n_lines == len(lines)
    assert chunk.rows.to_pylist() == expected.rows.to_pylist()
    assert chunk.bad_lines.to_pylist() == expected.bad_lines.to_pylist()


def test_clean_lines_are_numbered_by_position_and_trimmed():
    # Worked out by hand: line 7 is the first of the block; '" b "' is trimmed to 'b';
    # an empty field and an empty quoted field are NULL.
    block = b'E1,F,back pain\nE2," b ",""\nE3,,"cough, dry"'
    chunk, n_lines = _split_block(block, 7, HEADER)
    assert n_lines == 3
    assert chunk.rows.to_pylist() == [
        {"encounter_id": "E1", "sex": "F", "chief_complaint": "back pain", "source_row": 7},
        {"encounter_id": "E2", "sex": "b", "chief_complaint": None, "source_row": 8},
        {"encounter_id": "E3", "sex": None, "chief_complaint": "cough, dry", "source_row": 9},
    ]
    assert chunk.bad_lines.num_rows == 0


def test_lines_of_a_block_keep_their_newline_and_count_a_trailing_empty_line():
    assert _lines_of(b"a,b\nc\n").to_pylist() == ["a,b\n", "c\n", ""]
    assert _lines_of(b"").to_pylist() == [""]


# Text with every kind of byte the shortcuts look at: printable ASCII, the space, a
# tab, a control character, a quote, a two-byte letter, and Unicode's no-break and
# ideographic spaces (multi-byte whitespace).
AWKWARD = st.text(alphabet='a, "\t\x1f\u00e9\u00a0\u3000', max_size=5)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.none(), AWKWARD), max_size=8), start=st.integers(0, 3))
def test_values_are_trimmed_and_empty_ones_null_as_arrow_trims_them(values, start):
    # The reference is Arrow's trim applied to every value, with no shortcut; the array
    # is sliced so that offsets not starting at 0 are read right too.
    array = pa.array(["x"] * start + values, pa.string()).slice(start)
    trimmed = pc.utf8_trim_whitespace(array).to_pylist()
    expected = [None if v is None or v == "" else v for v in trimmed]
    assert _empty_to_null(array).to_pylist() == expected


def test_a_value_with_a_unicode_space_at_an_end_is_trimmed():
    # By hand: the no-break space (two bytes) and the ideographic space (three) are
    # whitespace to Arrow; the e with an accent is not.
    array = pa.array(["\u00a0back", "pain\u3000", "caf\u00e9", "\u00a0", None], pa.string())
    assert _empty_to_null(array).to_pylist() == ["back", "pain", "caf\u00e9", None, None]


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(AWKWARD, min_size=1, max_size=10))
def test_blank_lines_and_odd_quotes_are_found_as_arrow_finds_them_line_by_line(lines):
    block = "\n".join(lines).encode("utf-8")
    text = _lines_of(block)
    blank = pc.equal(pc.utf8_trim_whitespace(text), "").to_numpy(zero_copy_only=False)
    odd = pc.count_substring(text, '"').to_numpy(zero_copy_only=False) % 2 == 1
    found_blank, found_unbalanced = _blank_and_unbalanced(block, text)
    assert found_blank.tolist() == blank.tolist()
    assert found_unbalanced.tolist() == (odd & ~blank).tolist()


def test_blank_lines_and_odd_quotes_by_hand():
    # Lines: 'E1,"a"' (two quotes), blank with a no-break space, 'E2,"b' (one quote),
    # '\t' (blank), '"' (one quote).
    block = 'E1,"a"\n\u00a0\nE2,"b\n\t\n"'.encode()
    blank, unbalanced = _blank_and_unbalanced(block, _lines_of(block))
    assert blank.tolist() == [False, True, False, True, False]
    assert unbalanced.tolist() == [False, False, True, False, True]


def read_all(path: Path, chunk_bytes: int = 1 << 20) -> tuple[list[dict], list[dict]]:
    info = inspect_file(path)
    header = read_header(info)
    rows, bad = [], []
    for chunk in iter_chunks(info, header, max_bytes=chunk_bytes):
        rows += chunk.rows.to_pylist()
        bad += chunk.bad_lines.to_pylist()
    return rows, bad


TEXT = 'encounter_id,sex,chief_complaint\nE1,F,back pain\n\nE2,M,"cough, dry\nE3,X,café\nE4,F\n'
# By hand: line 3 is blank (skipped, counted), line 4 has an odd quote, line 6 is ragged.
EXPECTED_ROWS = [
    {"encounter_id": "E1", "sex": "F", "chief_complaint": "back pain", "source_row": 2},
    {"encounter_id": "E3", "sex": "X", "chief_complaint": "café", "source_row": 5},
]
EXPECTED_BAD = [
    {"source_row": 4, "column_name": None, "rule": "balanced_quotes", "value": 'E2,M,"cough, dry'},
    {"source_row": 6, "column_name": None, "rule": "field_count", "value": "E4,F"},
]


def test_line_ends_and_encoding_do_not_change_what_is_read(tmp_path: Path):
    variants = {
        "lf.csv": TEXT.encode("utf-8"),
        "crlf.csv": TEXT.replace("\n", "\r\n").encode("utf-8"),
        "cr.csv": TEXT.replace("\n", "\r").encode("utf-8"),
        "bom.csv": b"\xef\xbb\xbf" + TEXT.encode("utf-8"),
        "latin1.csv": TEXT.encode("latin-1"),
        "latin1_crlf.csv": TEXT.replace("\n", "\r\n").encode("latin-1"),
        "utf16.csv": TEXT.encode("utf-16"),  # with its byte-order mark
        "utf16_crlf.csv": TEXT.replace("\n", "\r\n").encode("utf-16"),
    }
    for name, content in variants.items():
        path = tmp_path / name
        path.write_bytes(content)
        assert inspect_file(path).has_cr == (b"\r" in content), name
        assert read_all(path) == (EXPECTED_ROWS, EXPECTED_BAD), name
        # Blocks of a few bytes (one line each) give the same rows and lines.
        assert read_all(path, chunk_bytes=4) == (EXPECTED_ROWS, EXPECTED_BAD), name


def test_read_ahead_keeps_the_order_reads_in_another_thread_and_raises_where_reading_stopped():
    threads: set[int] = set()

    def chunks():
        for i in range(4):
            threads.add(threading.get_ident())
            yield i
        raise ValueError("line 9 cannot be read")

    seen = []
    with pytest.raises(ValueError, match="line 9"):
        for item in read_ahead(chunks()):
            seen.append(item)
    assert seen == [0, 1, 2, 3]
    assert threads and threading.get_ident() not in threads

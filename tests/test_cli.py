"""The console: `redflags query` (read-only, one-line errors, every output format printed
and written by DuckDB itself), the help of every command, and usage errors in one line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.cohorts.build import build_cohorts, publish_marts
from pipelines.published import write_copy
from tests.support.cohorts import presentation, referral, warehouse


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("query")
    con = warehouse(
        tmp,
        [presentation("E1", "A", 0, tier="high"), presentation("E2", "B", 3)],
        [referral("R1", "A", 2)],
    )
    build_cohorts(con)
    publish_marts(con, "run-q")
    write_copy(con, tmp / "w.duckdb")
    con.close()
    return tmp / "w.duckdb"


def redflags(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


SQL = "SELECT encounter_id, index_tier, days_to_imaging_any FROM marts.index_presentations"


@pytest.mark.slow
def test_csv_and_json_to_stdout(published: Path):
    result = redflags("query", SQL + " ORDER BY 1", "-w", str(published), "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "encounter_id,index_tier,days_to_imaging_any",
        "E1,high,2",
        "E2,low,",
    ]
    result = redflags("query", SQL + " ORDER BY 1", "-w", str(published), "--format", "json")
    assert json.loads(result.stdout) == [
        {"encounter_id": "E1", "index_tier": "high", "days_to_imaging_any": 2},
        {"encounter_id": "E2", "index_tier": "low", "days_to_imaging_any": None},
    ]


@pytest.mark.slow
def test_table_and_parquet(published: Path, tmp_path: Path):
    result = redflags("query", SQL + " ORDER BY 1", "-w", str(published))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[3:6] == [
        "├──────────────┼────────────┼─────────────────────┤",
        "│ E1           │ high       │                   2 │",
        "│ E2           │ low        │                NULL │",
    ]
    assert result.stderr == "(2 rows)\n"
    out = tmp_path / "r.parquet"
    result = redflags("query", SQL, "-w", str(published), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert pq.read_table(out).num_rows == 2
    assert pq.ParquetFile(out).metadata.row_group(0).column(0).compression == "ZSTD"


def query(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`redflags query ...` in this process: exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as ended:
        main(["query", *args])
    captured = capsys.readouterr()
    return ended.value.code, captured.out, captured.err


# A NULL, a date, a list and two DECIMALs, one wider than a double holds exactly.
TYPES = (
    "SELECT 1 AS id, NULL::INTEGER AS n, DATE '2023-02-14' AS d, [1, 2] AS l, "
    "1.50::DECIMAL(10, 2) AS amount UNION ALL "
    "SELECT 2, 7, NULL, [], 12345678901234567890.25::DECIMAL(38, 2) ORDER BY id"
)
TYPES_TABLE = """\
┌───────┬───────┬────────────┬─────────┬─────────────────────────┐
│  id   │   n   │     d      │    l    │         amount          │
│ int32 │ int32 │    date    │ int32[] │      decimal(38,2)      │
├───────┼───────┼────────────┼─────────┼─────────────────────────┤
│     1 │  NULL │ 2023-02-14 │ [1, 2]  │                    1.50 │
│     2 │     7 │ NULL       │ []      │ 12345678901234567890.25 │
└───────┴───────┴────────────┴─────────┴─────────────────────────┘
"""
TYPES_CSV = """\
id,n,d,l,amount
1,,2023-02-14,"[1, 2]",1.50
2,7,,[],12345678901234567890.25
"""
TYPES_TSV = TYPES_CSV.replace(",", "\t").replace('"[1\t 2]"', "[1, 2]")
TYPES_JSON = """\
[
\t{"id":1,"n":null,"d":"2023-02-14","l":[1,2],"amount":1.50},
\t{"id":2,"n":7,"d":null,"l":[],"amount":12345678901234567890.25}
]
"""


def test_null_date_list_and_decimal_in_every_format(
    published: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    code, out, err = query(capsys, TYPES, "-w", str(published))
    assert (code, out.rstrip("\n") + "\n", err) == (0, TYPES_TABLE, "(2 rows)\n")
    for fmt, expected in (("csv", TYPES_CSV), ("tsv", TYPES_TSV), ("json", TYPES_JSON)):
        assert query(capsys, TYPES, "-w", str(published), "-f", fmt) == (0, expected, ""), fmt
    # JSON numbers are the DECIMAL's, digit for digit
    rows = json.loads(TYPES_JSON, parse_float=Decimal)
    assert rows[1]["amount"] == Decimal("12345678901234567890.25")

    out_file = tmp_path / "types.parquet"
    assert query(capsys, TYPES, "-w", str(published), "-o", str(out_file)) == (0, "", "")
    table = pq.read_table(out_file)
    assert table.schema == pa.schema(
        [
            ("id", pa.int32()),
            ("n", pa.int32()),
            ("d", pa.date32()),
            ("l", pa.list_(pa.int32())),
            ("amount", pa.decimal128(38, 2)),
        ]
    )
    assert table.to_pylist() == [
        {"id": 1, "n": None, "d": date(2023, 2, 14), "l": [1, 2], "amount": Decimal("1.50")},
        {"id": 2, "n": 7, "d": None, "l": [], "amount": Decimal("12345678901234567890.25")},
    ]


def test_the_format_comes_from_the_out_files_extension_unless_given(
    published: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    expected = {".csv": TYPES_CSV, ".tsv": TYPES_TSV, ".json": TYPES_JSON, ".txt": TYPES_TABLE}
    for suffix, text in expected.items():
        out = tmp_path / f"r{suffix.upper()}"  # the extension in any case
        code, printed, err = query(capsys, TYPES, "-w", str(published), "--out", str(out))
        assert (code, printed) == (0, ""), err
        assert out.read_text(encoding="utf-8").rstrip("\n") + "\n" == text, suffix
    # --format wins over the extension
    out = tmp_path / "really.csv"
    assert query(capsys, TYPES, "-w", str(published), "-o", str(out), "-f", "json")[0] == 0
    assert out.read_text(encoding="utf-8") == TYPES_JSON
    # no format can be told from the name: a usage error naming the choices, nothing written
    for name in ("r.xlsx", "result"):
        code, printed, err = query(capsys, TYPES, "-w", str(published), "-o", str(tmp_path / name))
        assert code == 2 and printed == ""
        assert err.startswith(f"redflags: error: --out {tmp_path / name}: cannot tell the format")
        assert err.endswith(
            "end the name with one of .txt, .csv, .tsv, .json, .parquet, or give --format "
            "table|csv|tsv|json|parquet\n"
        )
        assert not (tmp_path / name).exists()
    # nothing but the result is left in the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"r{suffix.upper()}" for suffix in expected] + ["really.csv"]
    )


# Years Python's datetime cannot hold: DuckDB writes them, so the output is DuckDB's text.
OUT_OF_RANGE = (
    "SELECT DATE '-2024-01-01' AS d, DATE '9999-12-31' + INTERVAL 1 DAY AS t, "
    "[DATE '0000-01-01'] AS l, 7 AS n"
)


def test_dates_outside_pythons_range_are_printed_not_a_traceback(
    published: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    # Year -2024 is 2025 BC (there is a year 0); 9999-12-31 plus a day is year 10000.
    assert query(capsys, OUT_OF_RANGE, "-w", str(published), "--format", "csv") == (
        0,
        "d,t,l,n\n2025-01-01 (BC),10000-01-01 00:00:00,['0001-01-01 (BC)'],7\n",
        "",
    )
    code, out, _ = query(capsys, OUT_OF_RANGE, "-w", str(published), "--format", "json")
    assert json.loads(out) == [
        {"d": "2025-01-01 (BC)", "t": "10000-01-01 00:00:00", "l": ["0001-01-01 (BC)"], "n": 7}
    ]
    code, out, err = query(capsys, OUT_OF_RANGE, "-w", str(published))
    assert code == 0, err
    assert out.splitlines()[4] == (
        "│ 2025-01-01 (BC) │ 10000-01-01 00:00:00 │ ['0001-01-01 (BC)'] │     7 │"
    )
    # Parquet keeps them as dates and timestamps
    out_file = tmp_path / "old.parquet"
    assert query(capsys, OUT_OF_RANGE, "-w", str(published), "-o", str(out_file))[0] == 0
    types = pq.read_schema(out_file).types
    assert types[:3] == [pa.date32(), pa.timestamp("us"), pa.list_(pa.date32())]
    # Two columns of one name: DuckDB names the second a_1, as its own writers do.
    twins = query(
        capsys, "SELECT 1 AS a, DATE '2020-01-01' AS a", "-w", str(published), "-f", "csv"
    )
    assert twins == (0, "a,a_1\n1,2020-01-01\n", "")


def test_a_long_table_says_how_many_rows_it_leaves_out(
    published: Path, capsys: pytest.CaptureFixture[str]
):
    code, out, err = query(capsys, "SELECT i FROM range(10005) t(i)", "-w", str(published))
    assert code == 0
    lines = out.rstrip("\n").splitlines()
    # 3 heading lines and the rule, 9,999 rows, the bottom line: no row elided
    assert len(lines) == 4 + 9_999 + 1
    assert lines[4].split() == ["│", "0", "│"] and lines[-2].split() == ["│", "9998", "│"]
    assert err == (
        "(10,005 rows; the table shows the first 9,999: --format csv or --out FILE writes "
        "them all)\n"
    )
    code, out, err = query(
        capsys, "SELECT i FROM range(10005) t(i)", "-w", str(published), "-f", "csv"
    )
    assert out.splitlines()[-1] == "10004" and err == ""


def test_a_terminal_gets_duckdbs_screen_sized_table():
    import duckdb

    from pipelines.query import render_table, writer_connection

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    with duckdb.connect() as con, writer_connection(None) as writer:
        rows = render_table(
            writer, con.sql("SELECT i FROM range(100) t(i)").to_arrow_reader(), screen
        )
    assert rows == 100
    # DuckDB's own elision on a screen (the first and last rows), and its footer saying so
    shown = [
        line.split()[1] for line in screen.getvalue().splitlines() if line[2:].strip(" │").isdigit()
    ]
    assert shown == [str(i) for i in [*range(10), *range(90, 100)]]
    assert screen.getvalue().split()[-4:] == ["100", "rows", "(20", "shown)"]


def test_the_writing_connection_writes_only_into_its_folder(tmp_path: Path):
    import duckdb

    from pipelines.query import writer_connection

    folder = tmp_path / "mine"
    folder.mkdir()
    with writer_connection(folder) as writer:
        writer.execute(f"COPY (SELECT 1 AS x) TO '{folder / 'ok.csv'}'")
        with pytest.raises(duckdb.PermissionException):
            writer.execute(f"COPY (SELECT 1 AS x) TO '{tmp_path / 'leak.csv'}'")
        with pytest.raises(duckdb.PermissionException):
            writer.execute("SELECT * FROM read_csv('/etc/passwd')")
    assert (folder / "ok.csv").read_text() == "x\n1\n"
    assert not (tmp_path / "leak.csv").exists()


def test_a_failing_query_leaves_no_file(
    published: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    sql = "SELECT CAST(i::VARCHAR || 'x' AS INTEGER) AS n FROM range(100000) t(i)"
    out = tmp_path / "r.csv"
    code, printed, err = query(capsys, sql, "-w", str(published), "-o", str(out))
    assert code == 1 and printed == ""
    assert err == (
        "redflags: error: SQL error: Conversion Error: Could not convert string '0x' to INT32\n"
    )
    assert list(tmp_path.iterdir()) == []


WRITES = [
    "CREATE TABLE marts.x AS SELECT 1",
    "DELETE FROM marts.care_gaps",
    "DROP TABLE marts.cohort_summary",
    "COPY marts.index_presentations TO '{leak}'",
]


@pytest.mark.slow
def test_writes_are_refused_in_one_line(published: Path, tmp_path: Path):
    leak = tmp_path / "leak.csv"
    for statement in WRITES:
        result = redflags("query", statement.format(leak=leak), "-w", str(published))
        assert result.returncode == 1, statement
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, statement
        assert lines[0].startswith("redflags: error: redflags query is read-only"), statement
    assert not leak.exists()
    # nothing changed: the summary is still there, with its rows
    check = redflags(
        "query",
        "SELECT count(*) AS n FROM marts.cohort_summary",
        "-w",
        str(published),
        "--format",
        "csv",
    )
    assert check.returncode == 0 and int(check.stdout.splitlines()[1]) > 0


@pytest.mark.slow
def test_sql_error_is_one_line(published: Path):
    result = redflags("query", "SELECT nope FROM marts.index_presentations", "-w", str(published))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("redflags: error: SQL error: Binder Error:")
    assert "nope" in lines[0]


@pytest.mark.slow
def test_missing_warehouse_and_bad_format(tmp_path: Path, published: Path):
    result = redflags("query", "SELECT 1", "-w", str(tmp_path / "none.duckdb"))
    assert result.returncode == 1
    assert "no warehouse here" in result.stderr
    assert not (tmp_path / "none.duckdb").exists()
    result = redflags("query", "SELECT 1", "-w", str(published), "--format", "parquet")
    assert result.returncode == 2
    assert "add --out FILE" in result.stderr


@pytest.mark.slow
def test_long_output_through_a_pipe_is_whole_and_the_exit_status_kept(published: Path):
    # The console leaves without tearing the interpreter down (os._exit); what it
    # printed must still reach a pipe in full, and its status the caller.
    sql = "SELECT i, repeat('x', 50) AS pad FROM range(200000) t(i) ORDER BY i"
    result = redflags("query", sql, "-w", str(published), "--format", "csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 200_001
    assert lines[1] == "0," + "x" * 50 and lines[-1] == "199999," + "x" * 50
    refused = redflags("query", "DROP TABLE marts.care_gaps", "-w", str(published))
    assert refused.returncode != 0 and refused.stderr.startswith("redflags: error:")


@pytest.mark.slow
def test_csv_holds_no_spreadsheet_formula(published: Path):
    sql = (
        "SELECT '=cmd|'' /C calc''!A0' AS id, '@SUM(1+1)' AS t, -5 AS n, '-5' AS s, "
        "'-ve SLR' AS c, 'E1' AS \"=h\""
    )
    result = redflags("query", sql, "-w", str(published), "--format", "csv")
    assert result.returncode == 0, result.stderr
    # Formulas are quoted; numbers, as numbers or as text, keep their sign.
    assert result.stdout.splitlines() == [
        "id,t,n,s,c,'=h",
        "'=cmd|' /C calc'!A0,'@SUM(1+1),-5,-5,'-ve SLR,E1",
    ]


def test_tsv_and_csv_files_hold_no_spreadsheet_formula(
    published: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    sql = "SELECT '+44 20 7946 0958' AS phone, -5 AS n, '=1+1' AS \"@x\""
    for name in ("r.tsv", "r.csv"):
        assert query(capsys, sql, "-w", str(published), "-o", str(tmp_path / name))[0] == 0
    assert (tmp_path / "r.tsv").read_text() == "phone\tn\t'@x\n'+44 20 7946 0958\t-5\t'=1+1\n"
    assert (tmp_path / "r.csv").read_text() == "phone,n,'@x\n'+44 20 7946 0958,-5,'=1+1\n"


# ---------------------------------------------------------------- help and usage errors

COMMANDS = ("init", "run", "report", "generate", "query", "export", "validate", "score", "serve")
FLAGS = {"--prune", "--export", "--rebuild", "--record-level", "--replace", "--help"}


def help_of(
    command: str, columns: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit) as ended:
        main([command, "--help"])
    assert ended.value.code == 0
    return capsys.readouterr().out


def options_of(text: str) -> dict[str, tuple[str, str]]:
    """`--name` -> (metavar, help) of every option in the help's Options section."""
    options: dict[str, tuple[str, str]] = {}
    name = ""
    for line in text.split("\nOptions:\n", 1)[1].splitlines():
        if line.startswith("  -"):  # an option: its names and metavar, then its help
            head, _, rest = line[2:].partition("  ")
            names = [n.strip(",") for n in head.split()]
            name = next(n for n in names if n.startswith("--"))
            metavar = " ".join(n for n in names if not n.startswith("-"))
            options[name] = (metavar, rest.strip())
        elif line.strip():
            metavar, help_text = options[name]
            options[name] = (metavar, f"{help_text} {line.strip()}".strip())
    return options


def settings_shown(options: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {
        name: help_text.split("[setting: ", 1)[1].rstrip("]")
        for name, (_, help_text) in options.items()
        if "[setting: " in help_text
    }


def test_help_lists_choices_flags_and_every_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    run = options_of(help_of("run", 120, capsys, monkeypatch))
    assert run["--engine"][0] == "<pandas|duckdb>"
    assert run["--source"][0] == "<canonical|omop|fhir>"
    assert {name: run[name][0] for name in ("--prune", "--export", "--rebuild")} == dict.fromkeys(
        ("--prune", "--export", "--rebuild"), ""
    )  # flags: no value
    assert settings_shown(run) == {
        "--input": "input_dir; default: data/sample",
        "--warehouse": "warehouse; default: data/warehouse.duckdb",
        "--engine": "engine; default: duckdb",
        "--lock-timeout": "lock_timeout; default: 300",
        "--source": "source; default: canonical",
        "--docs": "docs_dir; default: docs/ beside the warehouse",
        "--min-cell": "min_cell; default: 11",
        "--workers": "workers; default: 0",
        "--dask-address": "dask_address; default: not set",
        "--future-dates": "future_dates; default: quarantine",
    }
    assert run["--future-dates"][0] == "<quarantine|accept>"
    query = options_of(help_of("query", 120, capsys, monkeypatch))
    assert query["--format"][0] == "<table|csv|tsv|json|parquet>"
    assert query["--format"][1].endswith(
        "[default: the one --out's extension names (.txt .csv .tsv .json .parquet), else table]"
    )
    generate = options_of(help_of("generate", 120, capsys, monkeypatch))
    assert generate["--format"][0] == "<csv|parquet|canonical|omop|fhir>"
    assert generate["--format"][1].endswith("[default: csv]")
    export = options_of(help_of("export", 120, capsys, monkeypatch))
    assert settings_shown(export)["--out"] == "export_dir; default: data/exports"
    for command in COMMANDS:
        text = help_of(command, 120, capsys, monkeypatch)
        assert "<bool>" not in text and "(" + "default" not in text, command
        for name, (metavar, help_text) in options_of(text).items():
            if name in FLAGS:
                assert metavar == "", (command, name)
            else:  # every option's default is shown, or the option is required
                shown = ("[default: ", "; default: ", "[required]")
                assert any(s in help_text for s in shown), (command, name)
                assert "default: ]" not in help_text, (command, name)


@pytest.mark.parametrize("columns", [80, 120])
def test_help_text_is_wrapped_to_the_screen_not_by_hand(
    columns: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    """Each line of a description is as full as the screen allows: a line ends early
    only where its paragraph ends (no break a docstring's line ends put mid-sentence)."""
    width = columns - 2  # click's formatter leaves two columns
    for command in COMMANDS:
        text = help_of(command, columns, capsys, monkeypatch)
        description = text.split("\n\n", 1)[1].split("\nArguments:\n")[0].split("\nOptions:\n")[0]
        for paragraph in description.split("\n\n"):
            lines = paragraph.splitlines()
            for line, after in zip(lines, lines[1:], strict=False):
                assert len(line) <= width, (command, line)
                assert len(line) + 1 + len(after.split()[0]) > width, (command, line, after)


def unknown_option(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["run", "--bogus"],
            "redflags: error: run: No such option: --bogus (Possible options: --docs); "
            "see `redflags run --help`",
        ),
        (
            ["query", "SELECT 1", "--format", "xml"],
            "redflags: error: query: Invalid value for '--format' / '-f': Value error, 'xml' is "
            "not one of 'table', 'csv', 'tsv', 'json', 'parquet'; see `redflags query --help`",
        ),
        (
            ["export", "--prune"],
            "redflags: error: export: No such option: --prune; see `redflags export --help`",
        ),
        (["nope"], "redflags: error: No such command 'nope'; see `redflags --help`"),
        (
            ["score", "intake.csv"],
            "redflags: error: score: Missing option '--out' / '-o'; see `redflags score --help`",
        ),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(
    args: list[str], line: str, capsys: pytest.CaptureFixture[str]
):
    with pytest.raises(SystemExit) as ended:
        main(args)
    captured = capsys.readouterr()
    assert (ended.value.code, captured.out, captured.err) == (2, "", line + "\n")


@pytest.mark.slow
def test_the_console_command_prints_no_box():
    result = unknown_option("run", "--prune", "yes")
    assert result.returncode == 2
    assert result.stderr == (
        "redflags: error: run: Got unexpected extra argument(s) (yes); see `redflags run --help`\n"
    )
    assert result.stdout == ""


def test_version_and_the_bare_command(capsys: pytest.CaptureFixture[str]):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as ended:
        main(["--version"])
    assert (ended.value.code, capsys.readouterr().out) == (0, f"redflags {version('redflags')}\n")
    with pytest.raises(SystemExit) as ended:
        main([])
    captured = capsys.readouterr()
    assert ended.value.code == 2
    assert captured.err.startswith("Usage: redflags [OPTIONS] COMMAND [ARGS]...\n")
    assert "\nCommands:\n  init " in captured.err

"""The validation pages (Data Docs): what a run did to each file, in counts that reconcile.

One static page per run and file, `runs/<run_id>/<file>.html`, and `index.html`, which
lists every validation kept, newest first. The pages are plain HTML with their styles
inline and no script, so they open offline, from a file share or a mail alike.

Every count on them is the run's. Rows read, accepted and quarantined come from the
file's report (the loader checks read = accepted + quarantined); the rows that broke
each rule, and a few of their values as read, come from `quarantine.<table>`. Great
Expectations evaluates a file's distinct values (checkpoint.py), so its own counts
describe that small frame, not the file: from GX the pages take which expectations
were evaluated, their arguments and GX's verdict, and nothing else. The rules checked
in DuckDB (unique ids, known patients) and those applied while reading (unparseable
lines, the identifier guard) are listed beside the suite's.

Each run keeps its record as `runs/<run_id>/validation.json`, from which the index is
rebuilt; only the newest `docs_keep` runs are kept.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb

from pipelines.config import DOCS_BESIDE_WAREHOUSE
from pipelines.contracts import load_contract
from pipelines.ingest.summary import LOADED, REJECTED, FileReport, IngestSummary
from pipelines.outputs import write_text_atomically
from pipelines.sqltext import identifier
from pipelines.validation import outcomes

INDEX_FILE = "index.html"
RUNS_DIR = "runs"
RECORD_FILE = "validation.json"
EXAMPLES = 5  # values shown per rule
EXAMPLE_LENGTH = 80  # characters shown of a long value

# Who checks a rule, for the rules the suite does not hold (outcomes.py names them all).
GREAT_EXPECTATIONS = "Great Expectations"
DUCKDB = "DuckDB"
READER = "reader"
GUARD = "identifier guard"
CHECKED_BY: dict[str, str] = {
    outcomes.RAGGED_ROW: READER,
    outcomes.UNBALANCED_QUOTES: READER,
    outcomes.MAX_LENGTH: READER,
    outcomes.SCALAR: READER,
    outcomes.JSON_OBJECT: READER,
    outcomes.UNIQUE_KEYS: READER,
    outcomes.IDENTIFIER: GUARD,
    outcomes.FORMULA: GUARD,
    outcomes.UNIQUE: DUCKDB,
}


def default_docs_dir(warehouse: str | Path) -> Path:
    """The validation pages sit beside their warehouse: data/warehouse.duckdb -> data/docs/."""
    return Path(warehouse).parent / DOCS_BESIDE_WAREHOUSE


@dataclass
class RuleRows:
    """One rule as a run applied it to one file, and the rows that broke it."""

    column: str | None  # None: a rule of the whole line (field_count, balanced_quotes)
    rule: str
    checked_by: str
    expectation: str | None  # GX's expectation type, for the suite's rules
    kwargs: dict[str, Any]
    success: bool
    rows: int  # rows of the file that broke it, from the quarantine
    examples: list[str | None]  # a few of their values, as read (identifiers redacted)


@dataclass
class FileValidation:
    """One validation kept: a run's check of one file, as its page and the index show it."""

    run_id: str
    validated_at: str  # UTC, ISO 8601 to the microsecond: runs sort by it
    page: str  # relative to the docs directory, with "/"
    # The file's report as the run made it: LOADED (rows accepted or quarantined) or
    # REJECTED (nothing stored); its expectations are in `rules`.
    report: FileReport
    rules: list[RuleRows] = field(default_factory=list)

    @property
    def name(self) -> str:
        return Path(self.report.path).name

    @property
    def passed(self) -> bool:
        return self.report.status == LOADED and self.report.quarantined == 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileValidation:
        rules = [RuleRows(**rule) for rule in data["rules"]]
        return cls(**(data | {"report": FileReport(**data["report"]), "rules": rules}))


@dataclass(frozen=True)
class DocsLinks:
    """Where a run's validation pages are: the index, and the run's page of each file."""

    index: Path
    pages: list[Path]

    def as_dict(self) -> dict[str, Any]:
        return {"index": str(self.index), "pages": [str(p) for p in self.pages]}


# ---------------------------------------------------------------- counting


def quarantined_rules(
    con: duckdb.DuckDBPyConnection, table: str, file: str, run_id: str
) -> dict[tuple[str | None, str], tuple[int, list[str | None]]]:
    """(column, rule) -> (rows of the file that broke it, its first distinct values).

    Counted like the file's report counts its rules (`count(DISTINCT source_row)`), from
    the rows this run quarantined.
    """
    where = "WHERE source_file = $file AND run_id = $run"
    params = {"file": file, "run": run_id}
    counts = con.execute(
        f"SELECT column_name, rule, count(DISTINCT source_row) FROM quarantine.{identifier(table)} "
        f"{where} GROUP BY ALL",
        params,
    ).fetchall()
    examples = con.execute(
        f"""SELECT column_name, rule, value FROM (
            SELECT column_name, rule, value, min(source_row) AS first_row
            FROM quarantine.{identifier(table)} {where} GROUP BY ALL)
        QUALIFY row_number() OVER (PARTITION BY column_name, rule ORDER BY first_row) <= $n
        ORDER BY first_row""",
        params | {"n": EXAMPLES},
    ).fetchall()
    found: dict[tuple[str | None, str], tuple[int, list[str | None]]] = {
        (column, rule): (n, []) for column, rule, n in counts
    }
    for column, rule, value in examples:
        found[(column, rule)][1].append(value)
    return found


def rules_of(con: duckdb.DuckDBPyConnection, report: FileReport, run_id: str) -> list[RuleRows]:
    """Every rule the run applied to a loaded file, with the rows that broke it: the
    suite's expectations in its order, the rules checked in DuckDB, then any other rule
    the quarantine holds for the file (the reader's, the identifier guard's)."""
    broken = quarantined_rules(con, report.table, report.path, run_id)

    def rows(column: str | None, rule: str) -> tuple[int, list[str | None]]:
        return broken.pop((column, rule), (0, []))

    found: list[RuleRows] = []
    for checked in report.expectations:
        n, examples = rows(checked.column, checked.rule)
        found.append(
            RuleRows(
                checked.column,
                checked.rule,
                GREAT_EXPECTATIONS,
                checked.expectation,
                checked.kwargs,
                checked.success,
                n,
                examples,
            )
        )
    contract = load_contract(report.table)
    spanning = [(c.name, outcomes.UNIQUE, {"column": c.name}) for c in contract.columns if c.unique]
    spanning += [
        (c.name, outcomes.known_in(c.references), {"column": c.name, "references": c.references})
        for c in contract.columns
        if c.references
    ]
    for column, rule, kwargs in spanning:
        n, examples = rows(column, rule)
        found.append(RuleRows(column, rule, DUCKDB, None, kwargs, n == 0, n, examples))
    for (column, rule), (n, examples) in sorted(
        broken.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])
    ):
        kwargs = {"column": column} if column else {}
        found.append(
            RuleRows(column, rule, CHECKED_BY.get(rule, READER), None, kwargs, False, n, examples)
        )
    return found


def file_validation(
    con: duckdb.DuckDBPyConnection, report: FileReport, run_id: str, validated_at: str, page: str
) -> FileValidation:
    """What the page of one file shows: its report's counts and every rule's rows."""
    rules = rules_of(con, report, run_id) if report.status == LOADED else []
    return FileValidation(run_id, validated_at, page, replace(report, expectations=[]), rules)


# ---------------------------------------------------------------- writing


def safe_name(name: str) -> str:
    """A file or directory name that needs no quoting in a link and no care in a shell."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip(".") or "_"


def page_names(paths: list[str]) -> list[str]:
    """One page name per file, `<file name>.html`, made unique within the run."""
    names: list[str] = []
    for path in paths:
        base = safe_name(Path(path).name)
        name, n = f"{base}.html", 1
        while name in names:
            n += 1
            name = f"{base}-{n}.html"
        names.append(name)
    return names


def write_validation_docs(
    con: duckdb.DuckDBPyConnection,
    docs_dir: str | Path,
    summary: IngestSummary,
    *,
    keep: int,
) -> DocsLinks:
    """Write the run's pages (one per file it validated), prune to the newest `keep` runs
    and rebuild the index. Unchanged files were not validated by this run: no page.

    The run's pages are written into a hidden directory and renamed into place, so the
    index never links to a half-written run.
    """
    docs_dir = Path(docs_dir)
    runs = docs_dir / RUNS_DIR
    runs.mkdir(parents=True, exist_ok=True)
    validated = [f for f in summary.files if f.status in (LOADED, REJECTED)]
    pages: list[Path] = []
    if validated:
        run_dir = safe_name(summary.run_id)
        validated_at = datetime.now(UTC).isoformat(timespec="microseconds")
        records = [
            file_validation(con, report, summary.run_id, validated_at, f"{RUNS_DIR}/{run_dir}/{n}")
            for report, n in zip(validated, page_names([f.path for f in validated]), strict=True)
        ]
        staging = runs / f".{run_dir}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            for record in records:
                html = render_page(record)
                (staging / Path(record.page).name).write_text(html, encoding="utf-8")
            (staging / RECORD_FILE).write_text(
                json.dumps([asdict(r) for r in records], indent=1), encoding="utf-8"
            )
            shutil.rmtree(runs / run_dir, ignore_errors=True)
            staging.rename(runs / run_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        pages = [docs_dir / r.page for r in records]
    prune_runs(docs_dir, keep)
    return DocsLinks(write_index(docs_dir), pages)


def kept_runs(docs_dir: str | Path) -> list[list[FileValidation]]:
    """The validations of every run kept, newest run first."""
    runs = []
    for record in Path(docs_dir, RUNS_DIR).glob(f"*/{RECORD_FILE}"):
        data = json.loads(record.read_text(encoding="utf-8"))
        if data:
            runs.append([FileValidation.from_json(item) for item in data])
    return sorted(runs, key=lambda run: (run[0].validated_at, run[0].run_id), reverse=True)


def prune_runs(docs_dir: str | Path, keep: int) -> list[str]:
    """Remove the pages of all but the newest `keep` runs; returns the runs removed."""
    removed = []
    for run in kept_runs(docs_dir)[keep:]:
        shutil.rmtree(Path(docs_dir, run[0].page).parent, ignore_errors=True)
        removed.append(run[0].run_id)
    return removed


def docs_links(docs_dir: str | Path, run_id: str) -> DocsLinks:
    """The index and the pages of one run, as written (no pages: the run validated no
    file, or its pages were pruned)."""
    docs_dir = Path(docs_dir)
    record = docs_dir / RUNS_DIR / safe_name(run_id) / RECORD_FILE
    pages: list[Path] = []
    if record.is_file():
        data = json.loads(record.read_text(encoding="utf-8"))
        pages = [docs_dir / item["page"] for item in data]
    return DocsLinks(docs_dir / INDEX_FILE, pages)


def write_index(docs_dir: str | Path) -> Path:
    """index.html: every validation kept, newest first; written whole, then renamed."""
    index = Path(docs_dir) / INDEX_FILE
    index.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomically(index, render_index(kept_runs(docs_dir)))


# ---------------------------------------------------------------- rendering


def environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("pipelines.validation", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["count"] = lambda n: f"{n:,}"
    env.filters["share"] = share_text
    env.filters["example"] = example_text
    env.filters["kwargs"] = kwargs_text
    env.filters["href"] = lambda path: quote(path)
    env.filters["when"] = lambda iso: datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")
    return env


def share_text(rows: int, rows_read: int) -> str:
    """A rule's rows as a share of the rows read, never rounded to 0% or 100% when not."""
    if rows_read == 0:
        return "–"
    share = 100 * rows / rows_read
    if 0 < share < 0.01:
        return "<0.01%"
    if 99.99 < share < 100:
        return ">99.99%"
    return f"{share:.2f}%"


def example_text(value: str) -> str:
    """A value as read, cut short when long (a free-text field can hold pages)."""
    return value if len(value) <= EXAMPLE_LENGTH else value[: EXAMPLE_LENGTH - 1] + "…"


def kwargs_text(kwargs: dict[str, Any]) -> str:
    return ", ".join(
        f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in kwargs.items()
    )


def csp() -> str:
    from pipelines.report.render import CONTENT_SECURITY_POLICY

    return CONTENT_SECURITY_POLICY


def render_page(record: FileValidation) -> str:
    broken = sorted((r for r in record.rules if r.rows), key=lambda r: (-r.rows, r.rule))
    return (
        environment()
        .get_template("page.html.j2")
        .render(
            csp=csp(),
            v=record,
            f=record.report,
            broken=broken,
            rejected=record.report.status == REJECTED,
        )
    )


def render_index(runs: list[list[FileValidation]]) -> str:
    return (
        environment().get_template("index.html.j2").render(csp=csp(), runs=runs, rejected=REJECTED)
    )

"""Never a silent empty run: what stops a run between its ingest and its scoring.

A nightly run over an empty folder, over files that hold no row, or over files whose
rows were mostly quarantined (dates shifted into the future, a changed export format)
would otherwise publish marts that look like a good night's. Such a run stops after
its ingest, with one line naming the file, the rule that quarantined most of its rows
and the setting that would change the outcome, and exit code `EXIT_EMPTY_RUN`.

What was ingested stays (raw, quarantine, staging, the manifest and the validation
pages, which show why); nothing is scored and the marts and their published copy stay
those of the last good run. A file left unchanged is judged again by its counts in the
manifest, so the next run stops the same way until the file or the setting changes.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.errors import UserError
from pipelines.ingest.summary import LOADED, REJECTED, UNCHANGED, FileReport, IngestSummary

# sysexits.h EX_DATAERR: the input data was incorrect. Distinct from 1 (a failed run),
# so a scheduler can tell "the run broke" from "the night's data is not usable".
EXIT_EMPTY_RUN = 65

# The setting that decides a rule, where one does; any other rule is the file's to fix.
RULE_SETTINGS: dict[str, str] = {
    "not_after_load_date": 'future_dates = "accept" (a source whose dates are shifted on purpose)',
    "date_range": "date_min / date_max",
}

INPUT_NAMES = "intake*, referrals*, diagnoses*, patients* (.csv, .tsv, .csv.gz, .parquet, .jsonl)"


def require_input_files(found: dict[str, list], input_dir: str | Path) -> None:
    """Stop when the input directory holds no input file at all."""
    if not any(found.values()):
        raise UserError(
            f"{input_dir}: no input file ({INPUT_NAMES}); nothing to load, nothing "
            "published: check the input_dir setting (--input)",
            exit_code=EXIT_EMPTY_RUN,
        )


def top_rule(con: duckdb.DuckDBPyConnection, report: FileReport) -> tuple[str, int] | None:
    """The rule that quarantined most of the file's rows, as `rule(column)`, and its count.

    A file loaded by this run carries its rules; an unchanged one's are in the quarantine.
    """
    rules = report.rules
    if not rules and report.status == UNCHANGED:
        rules = dict(
            con.execute(
                f"SELECT rule || coalesce('(' || column_name || ')', ''), "
                f"count(DISTINCT source_row) FROM quarantine.{report.table} "
                "WHERE source_file = ? GROUP BY 1",
                [report.path],
            ).fetchall()
        )
    if not rules:
        return None
    return min(rules.items(), key=lambda kv: (-kv[1], kv[0]))


def _quarantined(con: duckdb.DuckDBPyConnection, report: FileReport) -> str:
    """'9 of 10 rows quarantined (90%), top rule R 9; to accept them: SETTING'."""
    share = report.quarantined / report.rows_read
    text = f"{report.quarantined:,} of {report.rows_read:,} rows quarantined ({share:.0%})"
    found = top_rule(con, report)
    if found is None:
        return text
    rule, count = found
    text += f", top rule {rule} {count:,}"
    setting = RULE_SETTINGS.get(rule.split("(")[0])
    return text + (f"; the setting that decides it: {setting}" if setting else "")


def check_ingest(
    con: duckdb.DuckDBPyConnection,
    summary: IngestSummary,
    input_dir: str | Path,
    max_quarantine_share: float,
) -> None:
    """Stop the run when a file's quarantined share is above `max_quarantine_share`, or
    when the warehouse holds no intake row once the files are in."""
    current = [f for f in summary.files if f.status in (LOADED, UNCHANGED)]
    for report in current:
        if report.rows_read and report.quarantined / report.rows_read > max_quarantine_share:
            raise UserError(
                f"{report.path}: {_quarantined(con, report)}; above max_quarantine_share = "
                f"{max_quarantine_share:g}, so nothing was scored or published: fix the file, "
                "or raise max_quarantine_share if this is expected",
                exit_code=EXIT_EMPTY_RUN,
            )
    if con.execute("SELECT count(*) FROM staging.intake").fetchone()[0]:
        return
    intake = [f for f in summary.files if f.table == "intake"]
    if not intake:
        raise UserError(
            f"{input_dir}: no intake file (intake*) and no intake row in the warehouse, so "
            "nothing was scored or published: check the input_dir setting (--input)",
            exit_code=EXIT_EMPTY_RUN,
        )
    report = max(intake, key=lambda f: (f.status != REJECTED, f.rows_read))
    if report.status == REJECTED:
        what = f"{report.message.removeprefix(report.path + ': ')} (file rejected)"
    elif report.rows_read:
        what = _quarantined(con, report)
    else:
        what = "no row (empty or header only)"
    raise UserError(
        f"{report.path}: {what}; no intake row loaded, so nothing was scored or published",
        exit_code=EXIT_EMPTY_RUN,
    )

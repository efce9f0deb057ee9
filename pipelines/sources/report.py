"""What a source adapter mapped, left unmapped and rejected.

An adapter never drops a record silently: every visit, person, code or order that
does not reach the canonical tables is counted here, and the run summary prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class AdapterReport:
    """Counts of one conversion, by kind of record.

    - `read`: source records seen (per OMOP table or FHIR resource type);
    - `mapped`: canonical rows written (intake, referrals, diagnoses);
    - `unmapped`: source records kept out of a canonical column or table because no
      value set knows their code (e.g. a condition code with no ICD-10-CM mapping);
    - `rejected`: source records that cannot make a valid canonical row (a visit
      without a date, a person without a birth year);
    - `notes`: what the adapter did that changes what it read, one line each (an empty
      optional table skipped);
    - `unmapped_codes`: which codes the unmapped records carry, most frequent first
      per kind of record: {kind, vocabulary, code, name, rows}.
    """

    source: str
    read: dict[str, int] = field(default_factory=dict)
    mapped: dict[str, int] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unmapped_codes: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """Plain data for the flow's result (Prefect passes it between tasks)."""
        return {
            "source": self.source,
            "read": dict(self.read),
            "mapped": dict(self.mapped),
            "unmapped": dict(self.unmapped),
            "rejected": dict(self.rejected),
            "notes": list(self.notes),
            "unmapped_codes": [dict(c) for c in self.unmapped_codes],
        }

    def summary_lines(self) -> list[str]:
        """Lines for the console summary: one per count, zeros included so none hides."""
        lines = [f"source {self.source}:"]
        for title, counts in (
            ("read", self.read),
            ("mapped", self.mapped),
            ("unmapped", self.unmapped),
            ("rejected", self.rejected),
        ):
            for name, n in counts.items():
                lines.append(f"  {title:<9} {name:<40} {n:>10,}")
        lines.extend(f"  note: {note}" for note in self.notes)
        if self.unmapped_codes:
            lines.append("  top unmapped codes (kind, vocabulary, code, rows, name):")
            lines.extend(
                f"    {c['kind']:<10} {c['vocabulary']:<12} {c['code'] or '(no code)':<20} "
                f"{c['rows']:>8,}  {c['name'] or ''}".rstrip()
                for c in self.unmapped_codes
            )
        return lines


def summary_lines(report: dict[str, object]) -> list[str]:
    """The summary lines of a report that travelled as `as_dict()` data."""
    return AdapterReport(
        source=str(report["source"]),
        read=dict(report["read"]),  # type: ignore[arg-type]
        mapped=dict(report["mapped"]),  # type: ignore[arg-type]
        unmapped=dict(report["unmapped"]),  # type: ignore[arg-type]
        rejected=dict(report["rejected"]),  # type: ignore[arg-type]
        notes=list(report.get("notes", [])),  # type: ignore[call-overload]
        unmapped_codes=list(report.get("unmapped_codes", [])),  # type: ignore[call-overload]
    ).summary_lines()


UNMAPPED_CODES_TABLE = "ops.unmapped_codes"
UNMAPPED_CODES_DDL = f"""CREATE TABLE IF NOT EXISTS {UNMAPPED_CODES_TABLE} (
    run_id VARCHAR,
    source VARCHAR,
    kind VARCHAR,
    vocabulary VARCHAR,
    code VARCHAR,
    name VARCHAR,
    rows BIGINT
)"""


def record_unmapped_codes(con: Any, run_id: str, report: dict[str, object]) -> int:
    """Append the report's top unmapped codes to ops.unmapped_codes under run_id (a
    retried task replaces its own rows); returns the rows written.

    One table across runs, so that whoever maintains the value sets sees whether a
    code they added stopped appearing.
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS ops")
    con.execute(UNMAPPED_CODES_DDL)
    con.execute(f"DELETE FROM {UNMAPPED_CODES_TABLE} WHERE run_id = ?", [run_id])
    codes = list(report.get("unmapped_codes", []))  # type: ignore[call-overload]
    if codes:
        con.executemany(
            f"INSERT INTO {UNMAPPED_CODES_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    run_id,
                    report["source"],
                    c["kind"],
                    c["vocabulary"],
                    c["code"],
                    c["name"],
                    c["rows"],
                ]
                for c in codes
            ],
        )
    return len(codes)


def unmapped_code_rows(report: dict[str, object], min_cell: int) -> list[dict[str, str]]:
    """The table artifact of the unmapped codes. It leaves the warehouse, so a count
    below the minimum cell is shown as suppressed, as the release shows its counts."""
    return [
        {
            "kind": str(c["kind"]),
            "vocabulary": str(c["vocabulary"]),
            "code": str(c["code"] or "(no code)"),
            "name": str(c["name"] or ""),
            "rows": f"{c['rows']:,}" if int(c["rows"]) >= min_cell else "suppressed",
        }
        for c in report.get("unmapped_codes", [])  # type: ignore[attr-defined]
    ]

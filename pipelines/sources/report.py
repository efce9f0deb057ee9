"""What a source adapter mapped, left unmapped and rejected.

An adapter never drops a record silently: every visit, person, code or order that
does not reach the canonical tables is counted here, and the run summary prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
      optional table skipped).
    """

    source: str
    read: dict[str, int] = field(default_factory=dict)
    mapped: dict[str, int] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """Plain data for the flow's result (Prefect passes it between tasks)."""
        return {
            "source": self.source,
            "read": dict(self.read),
            "mapped": dict(self.mapped),
            "unmapped": dict(self.unmapped),
            "rejected": dict(self.rejected),
            "notes": list(self.notes),
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
    ).summary_lines()

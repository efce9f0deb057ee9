"""What the ingest stage did, file by file: one typed summary, from the loop to the console.

`IngestSummary` is what the ingest loop returns and what `redflags validate`, `redflags
run`, the run log and the Prefect artifacts all read; `format_summary` is the per-file
table both commands print.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines.validation.outcomes import Checked

# What became of an input file.
LOADED, UNCHANGED, REJECTED = "loaded", "unchanged", "rejected"
# Statuses of a file's earlier versions in ops.ingest_manifest.
REPLACED, PRUNED = "replaced", "pruned"

TOP_RULES = 3


@dataclass
class FileReport:
    """What happened to one input file, as the summary table and the manifest show it."""

    path: str
    table: str
    status: str
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    rules: dict[str, int] = field(default_factory=dict)  # "rule(column)" -> rows
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    redacted: int = 0
    capped: int = 0
    # What the GX suite evaluated (empty for a file not read, or read without rows): the
    # validation pages show it beside the rows each rule quarantined.
    expectations: list[Checked] = field(default_factory=list)


@dataclass
class IngestSummary:
    """One run's ingest stage."""

    run_id: str
    files: list[FileReport] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # gone from the input, rows kept
    # Entries of the input directory not read, each "name: why" (other names, other
    # formats, subdirectories, symbolic links leading out of the directory).
    skipped: list[str] = field(default_factory=list)

    def total(self, name: str) -> int:
        """A count over the files this run loaded (unchanged files were counted before)."""
        return sum(getattr(f, name) for f in self.files if f.status == LOADED)

    def count_status(self, status: str) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def clean(self) -> bool:
        """No row quarantined and no file rejected (unchanged files count as they were)."""
        return self.total("quarantined") == 0 and self.count_status(REJECTED) == 0

    @property
    def rejected(self) -> list[FileReport]:
        return [f for f in self.files if f.status == REJECTED]

    def to_json(self) -> dict:
        """Plain data for the run log's `details`; the expectations are the suite's, the
        same for every file of a table, and are shown on the validation pages instead."""
        data = asdict(self)
        for file in data["files"]:
            del file["expectations"]
        return data


def _rules(rules: dict[str, int]) -> str:
    top = sorted(rules.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_RULES]
    more = len(rules) - len(top)
    text = ", ".join(f"{rule} {n:,}" for rule, n in top)
    return text + (f", +{more} more" if more > 0 else "")


def format_summary(summary: IngestSummary, *, checked_only: bool = False) -> str:
    """One line per file, then rejected files with their reasons, warnings and identifier counts.

    `checked_only`: nothing was loaded (`validate`), so a good file reads as "ok".
    """
    label = {
        LOADED: "ok" if checked_only else "loaded",
        UNCHANGED: "unchanged",
        REJECTED: "REJECTED",
    }
    header = ("file", "table", "status", "rows", "accepted", "quarantined", "top failing rules")
    lines = []
    for f in summary.files:
        counted = f.status != REJECTED
        lines.append(
            (
                Path(f.path).name,
                f.table,
                label.get(f.status, f.status),
                f"{f.rows_read:,}" if counted else "-",
                f"{f.accepted:,}" if counted else "-",
                f"{f.quarantined:,}" if counted else "-",
                _rules(f.rules) if f.status == LOADED else "",
            )
        )
    not_read = ["files not read:", *(f"  {s}" for s in summary.skipped)] if summary.skipped else []
    if not lines:
        return "\n".join(
            [
                "no input files (expected intake*, referrals*, diagnoses*, patients* "
                ".csv/.tsv/.csv.gz/.parquet/.jsonl)",
                *not_read,
            ]
        )
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header) - 1)]
    numeric = {3, 4, 5}

    def render(row: tuple[str, ...]) -> str:
        cells = [
            row[i].rjust(widths[i]) if i in numeric else row[i].ljust(widths[i])
            for i in range(len(widths))
        ]
        return "  ".join([*cells, row[-1]]).rstrip()

    out = [render(header), *(render(row) for row in lines)]
    loaded = [f for f in summary.files if f.status == LOADED]
    out.append(
        f"total: {sum(f.rows_read for f in loaded):,} rows read = "
        f"{sum(f.accepted for f in loaded):,} accepted + "
        f"{sum(f.quarantined for f in loaded):,} quarantined"
        + (
            " (unchanged files not counted)"
            if any(f.status == UNCHANGED for f in summary.files)
            else ""
        )
    )
    rejected = [f for f in summary.files if f.status == REJECTED]
    if rejected:
        out.append("rejected files (nothing of them was stored):")
        out.extend(f"  {f.message}" for f in rejected)
    warnings = [w for f in summary.files for w in f.warnings]
    if warnings:
        out.append("warnings:")
        out.extend(f"  {w}" for w in warnings)
    redacted, capped = summary.total("redacted"), summary.total("capped")
    if redacted or capped:
        out.append(
            f"identifiers: {redacted:,} match(es) in free text replaced by [REDACTED]; "
            f"{capped:,} age(s) above 90 stored as 90"
        )
    out.extend(not_read)
    if summary.missing:
        out.append(
            "files no longer in the input (their rows are kept; pass --prune to remove them):"
        )
        out.extend(f"  {m}" for m in summary.missing)
    if summary.pruned:
        out.append("pruned (files gone from the input; their rows were removed):")
        out.extend(f"  {p}" for p in summary.pruned)
    return "\n".join(out)

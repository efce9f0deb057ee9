"""The per-file table that `redflags validate` and `redflags run` print after ingest."""

from __future__ import annotations

from pathlib import Path

from pipelines.ingest import LOADED, REJECTED, UNCHANGED, IngestSummary

TOP_RULES = 3


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
    if not lines:
        return (
            "no input files (expected intake*, referrals*, diagnoses* .csv/.csv.gz/.parquet/.jsonl)"
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
    if summary.missing:
        out.append(
            "files no longer in the input (their rows are kept; pass --prune to remove them):"
        )
        out.extend(f"  {m}" for m in summary.missing)
    if summary.pruned:
        out.append("pruned (files gone from the input; their rows were removed):")
        out.extend(f"  {p}" for p in summary.pruned)
    return "\n".join(out)

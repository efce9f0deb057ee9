"""What a run reports: the markdown summary and the table of headline numbers.

Plain functions of the run's summary dict, so they are tested without Prefect. Each
stage adds its own numbers under its own key; a key that is missing (a stage not wired
in yet, or a run that stopped early) shows as "not available", never as an error.

Keys read (all optional except run_id):
- raw: {table: rows loaded}
- validation: {rows_in, accepted, quarantined, rejected_files: [{file, reason}]}
- released: the counts of the run's release (pipelines/disclosure/release.py), the same
  the export and the report show, a suppressed one as SUPPRESSED:
  {tiers: {index tier: index presentations}, index_presentations, care_gaps,
  referral_rates: [{stratum, window_days, outcome, rate, n_eligible}]}

The artifacts leave the warehouse (anyone with the Prefect UI reads them), so they show
the release, never the marts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.ingest.stage import IngestSummary

MISSING = "not available"
SUPPRESSED = "suppressed"


def number(value: Any) -> str:
    """Counts with thousands separators, shares as percentages, missing as MISSING."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.1%}" if 0.0 <= value <= 1.0 else f"{value:,.2f}"
    return str(value)


def tier_sort_key(tier: str) -> tuple[int, str]:
    """Tiers in the rules' order, highest first (schemas/red_flags.yml)."""
    from pipelines.scoring.rules import tier_order

    order = tier_order()
    return (order.index(tier) if tier in order else len(order), tier)


def headline_rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """The table artifact: one row per headline number, `value` MISSING when not computed."""
    raw = summary.get("raw") or {}
    validation = summary.get("validation") or {}
    rejected = validation.get("rejected_files")
    rows: list[tuple[str, Any]] = [
        ("intake rows loaded", raw.get("intake")),
        ("referral rows loaded", raw.get("referrals")),
        ("diagnosis rows loaded", raw.get("diagnoses")),
        ("rows in", validation.get("rows_in")),
        ("rows accepted", validation.get("accepted")),
        ("rows quarantined", validation.get("quarantined")),
        ("files rejected", None if rejected is None else len(rejected)),
    ]
    released = summary.get("released") or {}
    rows += [
        ("index presentations", released.get("index_presentations")),
        ("care gaps", released.get("care_gaps")),
    ]
    tiers = released.get("tiers") or {}
    ordered = sorted(tiers.items(), key=lambda kv: tier_sort_key(kv[0]))
    rows += [(f"index tier {tier}", n) for tier, n in ordered]
    for rate in released.get("referral_rates") or []:
        label = (
            f"{rate.get('outcome', 'referral')} within {rate.get('window_days', '?')} days, "
            f"{rate.get('stratum', 'all')}"
        )
        rows.append((label, rate.get("rate")))
    return [{"measure": measure, "value": number(value)} for measure, value in rows]


def summary_markdown(summary: dict[str, Any]) -> str:
    """The markdown artifact of a run: what went in, what came out, what to look at."""
    lines = [f"# redflags run {summary.get('run_id', '?')}", ""]
    if summary.get("input_dir") or summary.get("warehouse"):
        lines += [
            f"- input: `{summary.get('input_dir', MISSING)}`",
            f"- warehouse: `{summary.get('warehouse', MISSING)}`",
            "",
        ]
    lines += ["## Rows", "", "| table | rows loaded |", "|---|---:|"]
    raw = summary.get("raw")
    if raw:
        lines += [f"| {table} | {number(n)} |" for table, n in raw.items()]
    else:
        lines.append(f"| all | {MISSING} |")

    lines += ["", "## Validation", ""]
    validation = summary.get("validation")
    if validation:
        lines += [
            f"- rows in: {number(validation.get('rows_in'))}",
            f"- accepted: {number(validation.get('accepted'))}",
            f"- quarantined: {number(validation.get('quarantined'))}",
        ]
        rejected = validation.get("rejected_files") or []
        lines.append(f"- rejected files: {len(rejected)}")
        lines += [f"  - `{r.get('file', '?')}`: {r.get('reason', '?')}" for r in rejected]
    else:
        lines.append(f"Validation numbers {MISSING}.")

    released = summary.get("released") or {}
    lines += ["", "## Index presentations by tier", ""]
    tiers = released.get("tiers")
    if tiers:
        total = released.get("index_presentations")
        lines += ["| index tier | index presentations | share |", "|---|---:|---:|"]
        for tier, n in sorted(tiers.items(), key=lambda kv: tier_sort_key(kv[0])):
            shown = isinstance(n, int) and isinstance(total, int) and total > 0
            share = f"{n / total:.1%}" if shown else SUPPRESSED
            lines.append(f"| {tier} | {number(n)} | {share} |")
    else:
        lines.append(f"Tier mix {MISSING}.")

    lines += ["", "## Referrals", ""]
    rates = released.get("referral_rates")
    if rates:
        lines += ["| stratum | outcome | window (days) | rate |", "|---|---|---:|---:|"]
        lines += [
            f"| {r.get('stratum', 'all')} | {r.get('outcome', 'referral')} "
            f"| {r.get('window_days', '?')} | {number(r.get('rate'))} |"
            for r in rates
        ]
    else:
        lines.append(f"Referral rates {MISSING}.")
    lines.append(f"\nCare gaps (high-risk, not referred): {number(released.get('care_gaps'))}")
    if released.get("min_cell"):
        lines.append(
            f"\nCounts from the run's release: minimum cell {released['min_cell']}, "
            "suppressed where smaller or where they could be worked out."
        )
    return "\n".join(lines) + "\n"


def validation_numbers(ingest: IngestSummary) -> dict[str, Any]:
    """The summary's `validation` key from the ingest stage's summary (files this run loaded)."""
    return {
        "rows_in": ingest.total("rows_read"),
        "accepted": ingest.total("accepted"),
        "quarantined": ingest.total("quarantined"),
        "rejected_files": [{"file": f.path, "reason": f.message} for f in ingest.rejected],
    }


def headline_numbers(con: Any) -> dict[str, Any]:
    """Tier mix, index presentations, care gaps and imaging rates by index tier, from the marts.

    `con` is an open warehouse connection; the flow calls this after publishing.
    """
    tiers = dict(
        con.execute(
            "SELECT tier, count(*) FROM features.presentation_flags GROUP BY tier"
        ).fetchall()
    )
    index_presentations = con.execute("SELECT count(*) FROM marts.index_presentations").fetchone()[
        0
    ]
    care_gaps = con.execute("SELECT count(*) FROM marts.care_gaps").fetchone()[0]
    rates = con.execute(
        """SELECT stratum_value, window_days, outcome, rate, n_eligible
           FROM marts.cohort_summary
           WHERE stratum_type = 'index_tier' AND outcome = 'imaging_any'
             AND window_days IN (14, 28)
           ORDER BY window_days, stratum_value"""
    ).fetchall()
    return {
        "tiers": tiers,
        "index_presentations": index_presentations,
        "care_gaps": care_gaps,
        "referral_rates": [
            {"stratum": s, "window_days": w, "outcome": o, "rate": r, "n_eligible": n}
            for s, w, o, r, n in rates
        ],
    }


def released_numbers(con: Any) -> dict[str, Any]:
    """The summary's `released` key: headline counts of the release in the warehouse."""
    import pandas as pd

    from pipelines.disclosure.release import read_release

    release = read_release(con)

    def count(value: Any) -> int | str:
        return SUPPRESSED if pd.isna(value) else int(value)

    mix = release.tables["index_tier_mix"]
    gaps = release.tables["care_gap_counts"]
    summary = release.tables["cohort_summary"]
    rates = summary[
        (summary["stratum_type"] == "index_tier")
        & (summary["outcome"] == "imaging_any")
        & summary["window_days"].isin([14, 28])
    ].sort_values(["window_days", "stratum_value"])
    return {
        "min_cell": release.min_cell,
        "tiers": {
            c: count(n) for c, n in zip(mix["category"], mix["n"], strict=True) if c != "all"
        },
        "index_presentations": count(mix.loc[mix["category"] == "all", "n"].iloc[0]),
        "care_gaps": count(gaps.loc[gaps["care_gap"] == "all", "n"].iloc[0]),
        "referral_rates": [
            {
                "stratum": stratum,
                "window_days": int(window),
                "outcome": outcome,
                "rate": SUPPRESSED if pd.isna(rate) else float(rate),
                "n_eligible": count(n),
            }
            for stratum, window, outcome, rate, n in zip(
                *(
                    rates[c]
                    for c in ("stratum_value", "window_days", "outcome", "rate", "n_eligible")
                ),
                strict=True,
            )
        ],
    }

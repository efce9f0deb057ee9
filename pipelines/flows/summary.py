"""What a run reports: the markdown summary and the table of headline numbers.

Plain functions of the run's summary dict, so they are tested without Prefect. Each
stage adds its own numbers under its own key; a key that is missing (a stage not wired
in yet, or a run that stopped early) shows as "not available", never as an error.

Keys read (all optional except run_id):
- raw: {table: rows loaded}
- validation: {rows_in, accepted, quarantined, rejected_files: [{file, reason}]}
- released: the counts of the run's release (pipelines/disclosure/release.py), the same
  the export and the report show, a suppressed one as SUPPRESSED:
  {min_cell, confidence_level, z, tiers: {index tier: index presentations},
  index_presentations, care_gaps, referral_rates: [{stratum, window_days, outcome,
  n_events, n_eligible, rate, ci_low, ci_high}]}

The artifacts leave the warehouse (anyone with the Prefect UI reads them), so they show
the release, never the marts. Every rate is shown with its denominator and its Wilson
score interval: the release's own for referral rates, worked out here from the
release's counts for a tier's share of the index presentations.
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


def interval(low: Any, high: Any) -> str:
    """A confidence interval as two percentages, SUPPRESSED or MISSING as the bounds are."""
    if SUPPRESSED in (low, high):
        return SUPPRESSED
    if low is None or high is None:
        return MISSING
    return f"{low:.1%} to {high:.1%}"


def interval_label(released: dict[str, Any]) -> str:
    """'95% interval', at the confidence level of the release's intervals."""
    level = released.get("confidence_level")
    return "interval" if level is None else f"{level:.0%} interval"


def tier_shares(released: dict[str, Any]) -> list[dict[str, Any]]:
    """Each tier's index presentations as a share of all of them, with its Wilson
    interval, tiers in rank order.

    A share needs both counts: where the release suppressed either, the share and its
    interval are SUPPRESSED too (a hidden count stays hidden, not implied by its share).
    """
    from pipelines.disclosure.release import wilson

    total = released.get("index_presentations")
    z = released.get("z")
    tiers = sorted((released.get("tiers") or {}).items(), key=lambda kv: tier_sort_key(kv[0]))
    shares = []
    for tier, n in tiers:
        if SUPPRESSED in (n, total):
            share = low = high = SUPPRESSED
        elif not isinstance(n, int) or not isinstance(total, int) or total <= 0:
            share = low = high = None
        else:
            share = n / total
            low, high = wilson(n, total, z) if z is not None else (None, None)
        shares.append(
            {"tier": tier, "n": n, "of": total, "share": share, "ci_low": low, "ci_high": high}
        )
    return shares


def tier_sort_key(tier: str) -> tuple[int, str]:
    """Tiers in the rules' order, highest first (schemas/red_flags.yml)."""
    from pipelines.scoring.rules import tier_order

    order = tier_order()
    return (order.index(tier) if tier in order else len(order), tier)


def headline_rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """The table artifact: one row per headline number.

    A count fills `count`; a rate fills `count` (its numerator), `denominator`, `rate`
    and the interval. Cells a row has no use for are empty; MISSING where not computed.
    """
    raw = summary.get("raw") or {}
    validation = summary.get("validation") or {}
    released = summary.get("released") or {}
    rejected = validation.get("rejected_files")
    counts: list[tuple[str, Any]] = [
        ("intake rows loaded", raw.get("intake")),
        ("referral rows loaded", raw.get("referrals")),
        ("diagnosis rows loaded", raw.get("diagnoses")),
        ("patient rows loaded", raw.get("patients")),
        ("rows in", validation.get("rows_in")),
        ("rows accepted", validation.get("accepted")),
        ("rows quarantined", validation.get("quarantined")),
        ("files rejected", None if rejected is None else len(rejected)),
        ("index presentations", released.get("index_presentations")),
        ("care gaps", released.get("care_gaps")),
    ]
    label = interval_label(released)
    rows = [
        {"measure": m, "count": number(n), "denominator": "", "rate": "", label: ""}
        for m, n in counts
    ]
    rows += [
        {
            "measure": f"index tier {s['tier']}",
            "count": number(s["n"]),
            "denominator": number(s["of"]),
            "rate": number(s["share"]),
            label: interval(s["ci_low"], s["ci_high"]),
        }
        for s in tier_shares(released)
    ]
    rows += [
        {
            "measure": f"{r.get('outcome', 'referral')} within {r.get('window_days', '?')} days, "
            f"{r.get('stratum', 'all')}",
            "count": number(r.get("n_events")),
            "denominator": number(r.get("n_eligible")),
            "rate": number(r.get("rate")),
            label: interval(r.get("ci_low"), r.get("ci_high")),
        }
        for r in referral_rates(released)
    ]
    return rows


def referral_rates(released: dict[str, Any]) -> list[dict[str, Any]]:
    """The release's referral rates by window, then by tier in rank order."""
    return sorted(
        released.get("referral_rates") or [],
        key=lambda r: (r.get("window_days", 0), tier_sort_key(str(r.get("stratum", "")))),
    )


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
    label = interval_label(released)
    lines += ["", "## Index presentations by tier", ""]
    shares = tier_shares(released)
    if shares:
        lines += [
            f"| index tier | index presentations | of | share | {label} |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {s['tier']} | {number(s['n'])} | {number(s['of'])} | {number(s['share'])} "
            f"| {interval(s['ci_low'], s['ci_high'])} |"
            for s in shares
        ]
    else:
        lines.append(f"Tier mix {MISSING}.")

    lines += ["", "## Referrals", ""]
    rates = referral_rates(released)
    if rates:
        lines += [
            f"| stratum | outcome | window (days) | referred | of | rate | {label} |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r.get('stratum', 'all')} | {r.get('outcome', 'referral')} "
            f"| {r.get('window_days', '?')} | {number(r.get('n_events'))} "
            f"| {number(r.get('n_eligible'))} | {number(r.get('rate'))} "
            f"| {interval(r.get('ci_low'), r.get('ci_high'))} |"
            for r in rates
        ]
    else:
        lines.append(f"Referral rates {MISSING}.")
    lines.append(f"\nCare gaps (high-risk, not referred): {number(released.get('care_gaps'))}")
    if released.get("min_cell"):
        lines.append(
            f"\nCounts from the run's release: minimum cell {released['min_cell']}, "
            "suppressed where smaller or where they could be worked out. Intervals are "
            "Wilson score intervals."
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
    """The summary's `released` key: headline counts, rates and intervals of the release
    in the warehouse."""
    import pandas as pd

    from pipelines.cohorts.definition import load_definition
    from pipelines.disclosure.release import read_release

    release = read_release(con)
    definition = load_definition()

    def count(value: Any) -> int | str:
        return SUPPRESSED if pd.isna(value) else int(value)

    def share(value: Any, suppressed: bool) -> float | str | None:
        """A rate or bound of a row: blanked by the release where the row is suppressed,
        else not defined (no one eligible)."""
        if not pd.isna(value):
            return float(value)
        return SUPPRESSED if suppressed else None

    mix = release.tables["index_tier_mix"]
    gaps = release.tables["care_gap_counts"]
    summary = release.tables["cohort_summary"]
    rates = summary[
        (summary["stratum_type"] == "index_tier")
        & (summary["outcome"] == "imaging_any")
        & summary["window_days"].isin([14, 28])
    ]
    columns = ("stratum_value", "window_days", "outcome", "n_events", "n_eligible")
    bounds = ("rate", "ci_low", "ci_high", "suppressed")
    return {
        "min_cell": release.min_cell,
        "confidence_level": definition.confidence_level,
        "z": definition.z,
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
                "n_events": count(events),
                "n_eligible": count(eligible),
                "rate": share(rate, bool(hidden)),
                "ci_low": share(low, bool(hidden)),
                "ci_high": share(high, bool(hidden)),
            }
            for stratum, window, outcome, events, eligible, rate, low, high, hidden in zip(
                *(rates[c] for c in (*columns, *bounds)), strict=True
            )
        ],
    }

"""The report's content: headline numbers, charts and tables, worked out from ReportData.

Each builder returns a Section. A builder whose mart is missing or empty returns
a Section with `unavailable` set, which the template shows as a clear "not
available" note in the section's place; nothing here raises on absent data.
Every count comes from the release (pipelines/disclosure/release.py), the same counts
the export writes: a NULL count is suppressed, and so are the rate, interval and median
of its row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from pipelines.report import charts
from pipelines.report.charts import window_label
from pipelines.report.data import ReportData
from pipelines.report.palette import RATE_OUTCOME, index_tiers, tier_label
from pipelines.scoring.rules import imaging_tiers, tier_actions, tier_order

RATE_OUTCOME_LABEL = "Imaged"
# Patterns are ranked at the HEDIS window; the longest window when that one is absent.
PATTERN_WINDOW_DAYS = 28
PATTERN_ROWS = 10
SUPPRESSED = "suppressed"
NOT_RECORDED = "–"


@dataclass
class Table:
    """A table whose cells are already text, so the template only lays it out."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    caption: str = ""


@dataclass
class Section:
    """One part of the page; `unavailable` replaces its body with the reason it is missing."""

    key: str
    title: str
    intro: str = ""
    charts: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unavailable: str | None = None


@dataclass
class Headline:
    """A number a reader should see before any chart."""

    label: str
    value: str
    detail: str = ""


def no_rows(index: pd.Index) -> pd.Series:
    """Nothing hidden: the mask used when no minimum cell is given."""
    return pd.Series(False, index=index)


def fmt_count(n: pd.Series, hidden: pd.Series | None = None) -> pd.Series:
    """Counts with thousands separators; hidden cells say so rather than go blank."""
    text = n.map(lambda v: NOT_RECORDED if pd.isna(v) else f"{int(v):,}")
    return text if hidden is None else text.where(~hidden, SUPPRESSED)


def fmt_share(share: pd.Series, hidden: pd.Series | None = None, digits: int = 1) -> pd.Series:
    """Shares (0..1) as percentages; text even when there are no rows, so it can be joined."""
    text = share.map(lambda v: NOT_RECORDED if pd.isna(v) else f"{v:.{digits}%}").astype(str)
    return text if hidden is None else text.where(~hidden, SUPPRESSED)


def fmt_rate_ci(rate: pd.Series, low: pd.Series, high: pd.Series, hidden: pd.Series) -> pd.Series:
    """'42.0% (35.1–49.2)': the rate and its 95% interval, in percent."""
    text = fmt_share(rate) + " (" + fmt_share(low, digits=1).str.rstrip("%") + "–"
    text = text + fmt_share(high, digits=1).str.rstrip("%") + ")"
    return text.where(rate.notna(), NOT_RECORDED).where(~hidden, SUPPRESSED)


def fmt_number(value: pd.Series, digits: int = 1) -> pd.Series:
    """Other numbers (median days, LR+) with a fixed number of decimals."""
    return value.map(lambda v: NOT_RECORDED if pd.isna(v) else f"{v:,.{digits}f}")


def table(frame: pd.DataFrame, numeric: list[str], caption: str = "") -> Table:
    """A table of already formatted text; `numeric` columns are right-aligned."""
    return Table(
        columns=list(frame.columns),
        rows=frame.astype(str).to_numpy().tolist(),
        numeric=[c in numeric for c in frame.columns],
        caption=caption,
    )


# ---------------------------------------------------------------------------- headline


def hidden(counts: pd.Series) -> pd.Series:
    """The release's suppressed counts (NULL)."""
    return counts.isna()


def tier_mix(data: ReportData) -> pd.DataFrame | None:
    """Index presentations per tier, low split by documentation, with suppression flags."""
    mix = data.mart("index_tier_mix")
    if mix is None:
        return None
    mix = mix[mix["category"] != "all"].reset_index(drop=True)
    order = {c: i for i, c in enumerate(index_tiers())}
    mix = mix.assign(order=mix["category"].map(order)).sort_values("order", na_position="last")
    mix = mix.reset_index(drop=True)[["category", "n"]]
    mix["hidden"] = hidden(mix["n"])
    return mix


def total_of(frame: pd.DataFrame, key: str) -> pd.Series:
    """The `all` row's count of a release table with a total row."""
    return frame.loc[frame[key] == "all", "n"].reset_index(drop=True)


def care_gap_summary(data: ReportData) -> Headline:
    """Care gaps in all and by kind."""
    gaps = data.mart("care_gap_counts")
    if gaps is None:
        return Headline("Care gaps", "not available", "the care_gaps mart is missing")
    total = total_of(gaps, "care_gap")
    gaps = gaps[gaps["care_gap"] != "all"]
    detail = "; ".join(
        f"{str(name).replace('_', ' ')}: {text}"
        for name, text in zip(
            gaps["care_gap"], fmt_count(gaps["n"], hidden(gaps["n"])), strict=True
        )
    )
    return Headline("Care gaps", fmt_count(total, hidden(total)).iloc[0], detail or "none")


def overuse_summary(data: ReportData) -> Headline:
    """The HEDIS-aligned share of uncomplicated low-back-pain index presentations not
    imaged within 28 days."""
    overuse = data.mart("imaging_overuse")
    if overuse is None:
        return Headline("Imaging overuse", "not available", "the imaging_overuse mart is missing")
    rows = overuse[(overuse["measure"] == "hedis_lbp") & (overuse["stratum_type"] == "all")]
    if rows.empty:
        return Headline("Imaging overuse", "not available", "no hedis_lbp row")
    row = rows.iloc[[0]].reset_index(drop=True)
    blank = row["share_not_imaged"].isna() & row["suppressed"].astype(bool)
    value = fmt_share(row["share_not_imaged"], blank).iloc[0]
    detail = (
        "share of uncomplicated low-back-pain index presentations aged 18–75 without spine "
        f"imaging within 28 days (HEDIS-aligned; higher is better); "
        f"{fmt_count(row['n_eligible'], hidden(row['n_eligible'])).iloc[0]} eligible"
    )
    if not blank.iloc[0] and row["ci_low"].notna().iloc[0]:
        detail += f", 95% CI {fmt_share(row['ci_low']).iloc[0]}–{fmt_share(row['ci_high']).iloc[0]}"
    return Headline("Not imaged (low back pain)", value, detail)


def headline_section(data: ReportData) -> tuple[list[Headline], Section]:
    """The numbers a reader sees first, and the tier mix chart beneath them."""
    mix = tier_mix(data)
    presentations = (
        fmt_count(pd.Series([data.n_presentations])).iloc[0]
        if data.n_presentations is not None
        else "not available"
    )
    headlines = [Headline("Presentations", presentations, "validated intake rows")]
    section = Section(
        "tier_mix",
        "Index presentations by tier",
        "New back-pain episodes by the tier of their first presentation. A low tier with "
        "under half of its fields recorded is shown on its own as poorly documented.",
    )
    if mix is None:
        headlines.append(Headline("Index episodes", "not available"))
        section.unavailable = "The index_presentations mart is missing or empty."
    else:
        total = total_of(data.marts["index_tier_mix"], "category")
        headlines.append(
            Headline(
                "Index episodes",
                fmt_count(total, hidden(total)).iloc[0],
                "new back-pain episodes (no back pain in the 180 days before)",
            )
        )
        known = int(total.iloc[0]) if total.notna().iloc[0] else 0
        share = mix["n"].astype("Float64") / max(known, 1)
        mix_text = fmt_share(share, mix["hidden"], digits=0)
        imaging = imaging_tiers()
        top = mix["category"].isin(imaging)
        top_share = pd.Series([share[top].sum()])
        labels = [tier_label(t).lower() for t in imaging]
        headlines.append(
            Headline(
                (", ".join(labels[:-1]) + " or " + labels[-1]).capitalize() + " tier",
                fmt_share(top_share, pd.Series([bool(mix["hidden"][top].any())]), 0).iloc[0],
                " · ".join(
                    f"{tier_label(c)} {t}" for c, t in zip(mix["category"], mix_text, strict=True)
                ),
            )
        )
        section.charts.append(charts.tier_mix_chart(mix))
        shown = mix.assign(
            Tier=mix["category"].map(tier_label),
            **{
                "Expected action": mix["category"].map(tier_actions()).fillna(""),
                "Index presentations": fmt_count(mix["n"], mix["hidden"]),
                "Share": mix_text,
            },
        )[["Tier", "Expected action", "Index presentations", "Share"]]
        section.tables.append(table(shown, ["Index presentations", "Share"]))
    headlines.append(care_gap_summary(data))
    headlines.append(overuse_summary(data))
    return headlines, section


# ------------------------------------------------------------------------- referral rates


def summary_rows(data: ReportData, stratum_type: str) -> pd.DataFrame | None:
    """cohort_summary rows of one stratum type for the report's outcome, with hidden flags."""
    summary = data.mart("cohort_summary")
    if summary is None:
        return None
    rows = summary[
        (summary["stratum_type"] == stratum_type) & (summary["outcome"] == RATE_OUTCOME)
    ].reset_index(drop=True)
    if rows.empty:
        return None
    rows["hide_eligible"] = hidden(rows["n_eligible"])
    rows["hidden"] = rows["suppressed"].astype(bool)
    return rows


def referral_rate_section(data: ReportData) -> Section:
    section = Section(
        "referral_rate",
        "Imaging by index tier and window",
        "Share of index presentations imaged within each window, with Wilson 95% intervals. "
        "Only presentations followed up for the whole window count (the rest are censored).",
    )
    rows = summary_rows(data, "index_tier")
    if rows is None:
        section.unavailable = "The cohort_summary mart is missing or has no index-tier rows."
        return section
    rank = {t: i for i, t in enumerate(tier_order())}
    rows = rows.assign(order=rows["stratum_value"].map(rank)).sort_values(
        ["order", "window_days"], na_position="last"
    )
    section.charts.append(
        charts.referral_rate_chart(
            rows.rename(columns={"stratum_value": "tier"}), f"{RATE_OUTCOME_LABEL} within window"
        )
    )
    shown = pd.DataFrame(
        {
            "Index tier": rows["stratum_value"].map(tier_label),
            "Window": rows["window_days"].map(window_label),
            "Eligible": fmt_count(rows["n_eligible"], rows["hide_eligible"]),
            "Imaged": fmt_count(rows["n_events"], hidden(rows["n_events"])),
            "Rate (95% CI)": fmt_rate_ci(
                rows["rate"], rows["ci_low"], rows["ci_high"], rows["hidden"]
            ),
            "Median days to imaging": fmt_number(rows["median_days_to_event"]).where(
                ~rows["hidden"], SUPPRESSED
            ),
        }
    )
    section.tables.append(
        table(shown, ["Eligible", "Imaged", "Rate (95% CI)", "Median days to imaging"])
    )
    return section


def curves_to_draw(curves: pd.DataFrame, k: int) -> tuple[pd.DataFrame, list[str]]:
    """The Kaplan-Meier points to draw under a minimum cell k, and the tiers left out.

    A curve is drawn only while k or more presentations are at risk and its points are
    released: past that, one step of the curve is one or a few people. A tier with fewer
    than k at day 0 (or its count suppressed) is not drawn at all.
    """
    at_start = curves[curves["day"] == curves["day"].min()].set_index("tier")["n_at_risk"]
    too_small = sorted(at_start.index[~(at_start >= k).fillna(False)])
    drawn = (curves["n_at_risk"] >= k).fillna(False) & curves["cumulative_incidence"].notna()
    kept = curves[~curves["tier"].isin(too_small) & drawn]
    return kept, too_small


def time_to_imaging_section(data: ReportData, k: int) -> Section:
    section = Section(
        "time_to_imaging",
        "Time to first imaging",
        "Kaplan–Meier cumulative incidence of the first imaging order after the index "
        "presentation, censored at the data end; shaded bands are 95% intervals.",
    )
    curves = data.mart("time_to_referral")
    if curves is None:
        section.unavailable = "The time_to_referral mart is missing or empty."
        return section
    curves, too_small = curves_to_draw(curves, k)
    if k > 1:
        section.notes.append(
            f"With a minimum cell of {k}, each curve stops where fewer than {k} presentations "
            "remain at risk or a count is hidden"
            + (f"; not drawn: {', '.join(tier_label(t) for t in too_small)}." if too_small else ".")
        )
    if curves.empty:
        section.unavailable = "Every curve is below the minimum cell size."
        return section
    rank = {t: i for i, t in enumerate(("all", *tier_order()))}
    curves = curves.assign(order=curves["tier"].map(rank)).sort_values(["order", "day"])
    section.charts.append(charts.km_chart(curves))
    return section


def pattern_section(data: ReportData) -> Section:
    section = Section(
        "patterns",
        "Red-flag patterns and imaging",
        "Patterns are the set of red flags present at the index presentation. "
        "The first table lists the patterns most often followed by imaging, the second "
        "those most often not followed by it.",
    )
    rows = summary_rows(data, "pattern")
    if rows is None:
        section.unavailable = "The cohort_summary mart is missing or has no pattern rows."
        return section
    windows = set(rows["window_days"])
    window = PATTERN_WINDOW_DAYS if PATTERN_WINDOW_DAYS in windows else max(windows)
    rows = rows[rows["window_days"] == window].assign(
        n_not_imaged=lambda f: f["n_eligible"] - f["n_events"]
    )
    n_hidden = int(rows["hidden"].sum())
    rows = rows[~rows["hidden"]]
    section.intro += f" Window: imaging within {window} days of the index."

    def ranked(by: str, caption: str) -> Table:
        top = rows.sort_values([by, "stratum_value"], ascending=[False, True]).head(PATTERN_ROWS)
        top = top[top[by] > 0]
        shown = pd.DataFrame(
            {
                "Pattern": top["stratum_value"]
                .replace({"none": "no red flags"})
                .str.replace("_", " ")
                .str.replace("+", " + "),
                "Eligible": fmt_count(top["n_eligible"]),
                "Imaged": fmt_count(top["n_events"]),
                "Not imaged": fmt_count(top["n_not_imaged"]),
                "Rate imaged (95% CI)": fmt_rate_ci(
                    top["rate"], top["ci_low"], top["ci_high"], no_rows(top.index)
                ),
            }
        )
        return table(shown, ["Eligible", "Imaged", "Not imaged", "Rate imaged (95% CI)"], caption)

    section.tables.append(ranked("n_events", "Most often followed by imaging"))
    section.tables.append(ranked("n_not_imaged", "Most often not followed by imaging"))
    if n_hidden:
        section.notes.append(
            f"{n_hidden} pattern(s) with cells under the minimum size are left out of both lists."
        )
    return section


# ------------------------------------------------------------------------- documentation


def documentation_section(data: ReportData) -> Section:
    section = Section(
        "documentation",
        "Documentation completeness",
        "Share of presentations whose stored value of each intake field is recorded "
        "(not NULL), over all presentations and by tier. Unrecorded is never read as absent.",
    )
    quality = data.mart("documentation_quality")
    if quality is None:
        section.unavailable = "The documentation_quality mart is missing or empty."
        return section
    values = quality["share_documented"].astype("Float64")
    fields = list(dict.fromkeys(quality["field"]))
    tiers = [t for t in ("all", *tier_order()) if t in set(quality["tier"])]
    grid = (
        quality.assign(value=values)
        .pivot_table(index="field", columns="tier", values="value", aggfunc="first", dropna=False)
        .reindex(index=fields, columns=tiers)
    )
    section.charts.append(charts.completeness_chart(grid.astype(float)))
    return section


# ---------------------------------------------------------------------------- validation


# ops.run_log columns of the ingest stage, in reading order, with their labels.
RUN_FACTS: dict[str, str] = {
    "run_id": "Run",
    "status": "Status",
    "started_at": "Started",
    "finished_at": "Finished",
    "input_dir": "Input",
    "files_seen": "Files seen",
    "files_loaded": "Files loaded",
    "files_unchanged": "Files unchanged (already loaded)",
    "files_rejected": "Files rejected",
    "files_pruned": "Files pruned",
    "rows_read": "Rows read",
    "rows_accepted": "Rows accepted",
    "rows_quarantined": "Rows quarantined",
    "values_redacted": "Values redacted",
    "ages_capped": "Ages capped at 90",
}
# ops.ingest_manifest: a file's versions that no longer feed staging.
SUPERSEDED = ("replaced", "pruned")
MANIFEST_COLUMNS: dict[str, str] = {
    "file_path": "File",
    "table_name": "Table",
    "status": "Status",
    "rows_read": "Rows read",
    "rows_accepted": "Accepted",
    "rows_quarantined": "Quarantined",
    "message": "Message",
}


def fact_text(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return NOT_RECORDED
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"
    return str(value)


def validation_section(data: ReportData) -> Section:
    """What the ingest stage did: the run's counts and the files that feed staging.

    Operational counts of files and rows, not counts of patients in a stratum:
    they are shown as they are, without small-cell suppression.
    """
    section = Section(
        "validation",
        "Validation of the last run",
        "Files read by the run, and what became of their rows: accepted into staging, "
        "quarantined row by row with the expectation that failed, or the file rejected whole.",
    )
    run = data.run
    if run is not None:
        facts = {label: run[column] for column, label in RUN_FACTS.items()}
        frame = pd.DataFrame({"": list(facts), "Value": [fact_text(v) for v in facts.values()]})
        section.tables.append(table(frame, [], "Run log"))
    manifest = data.manifest
    if manifest is not None:
        manifest = manifest[~manifest["status"].isin(SUPERSEDED)]
    if manifest is None or manifest.empty:
        if run is None:
            section.unavailable = "Neither ops.run_log nor ops.ingest_manifest has rows."
        else:
            section.notes.append("ops.ingest_manifest is missing or empty.")
        return section
    shown = manifest[list(MANIFEST_COLUMNS)].copy()
    shown["file_path"] = shown["file_path"].astype("string").str.rsplit("/", n=1).str[-1]
    counts = ["rows_read", "rows_accepted", "rows_quarantined"]
    for column in counts:
        shown[column] = fmt_count(shown[column])
    shown = shown.fillna("").rename(columns=MANIFEST_COLUMNS)
    if run is not None:
        shown["Loaded by"] = (manifest["run_id"] == run.get("run_id")).map(
            {True: "this run", False: "an earlier run"}
        )
    section.tables.append(
        table(shown, [MANIFEST_COLUMNS[c] for c in counts], "Files feeding staging")
    )
    return section


# -------------------------------------------------------------------------- rules


COUNT_COLUMNS = ("tp", "fp", "fn", "tn")
SHARE_COLUMNS = {
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv": "PPV",
    "npv": "NPV",
}


# The columns of a measure and its 95% interval in rule_performance.
CI_PARTS = ("", "_ci_low", "_ci_high")


def humanise(values: pd.Series) -> pd.Series:
    """A snake_case value as words: prior_cancer -> prior cancer."""
    return values.astype("string").str.replace("_", " ")


def rule_name(rule_type: pd.Series, rule: pd.Series) -> pd.Series:
    """'tier ≥ high' for a tier threshold, the flag's name in words for a flag."""
    is_tier = rule_type.astype("string").str.startswith("tier").fillna(False)
    return ("tier ≥ " + rule.astype("string")).where(is_tier, humanise(rule))


def rule_performance_section(data: ReportData, k: int) -> Section:
    section = Section(
        "rule_performance",
        "Rule performance",
        "How well each tier threshold (index tier at or above it) and each red flag at the "
        "index presentation predicts lung cancer, bone or spinal metastasis, myeloma, or any "
        "of them, diagnosed within 365 days, with 95% intervals. An index presentation "
        "counts when it was followed for 365 days or diagnosed within them; one whose "
        "patient had the target diagnosed before it does not count for that target.",
    )
    performance = data.mart("rule_performance")
    if performance is None:
        section.unavailable = (
            "No diagnoses were loaded, so there is nothing to measure the rules against "
            "(rule_performance is empty)."
        )
        return section
    hidden = performance["suppressed"].astype(bool)
    shown = pd.DataFrame(index=performance.index)
    if not (performance["target"] == performance["target"].iloc[0]).all():
        shown["Target"] = humanise(performance["target"])
    shown["Rule"] = rule_name(performance["rule_type"], performance["rule"])
    for column in COUNT_COLUMNS:
        shown[column.upper()] = fmt_count(performance[column], hidden)
    for column, label in SHARE_COLUMNS.items():
        shown[label] = fmt_rate_ci(
            *(performance[f"{column}{part}"].astype("Float64") for part in CI_PARTS), hidden
        )
    low, high = (
        fmt_number(performance[f"lr_positive{part}"].astype("Float64"), 2) for part in CI_PARTS[1:]
    )
    lr = fmt_number(performance["lr_positive"].astype("Float64"), 2) + " (" + low + "–" + high
    shown["LR+"] = (lr + ")").where(performance["lr_positive"].notna(), NOT_RECORDED)
    shown["LR+"] = shown["LR+"].where(~hidden, SUPPRESSED)
    numeric = [c.upper() for c in COUNT_COLUMNS] + list(SHARE_COLUMNS.values()) + ["LR+"]
    section.tables.append(table(shown, numeric))
    if hidden.any():
        section.notes.append(
            f"Rows with a count under {k}, or one that would give such a count away, "
            "are suppressed whole."
        )
    return section


def build_sections(data: ReportData) -> tuple[list[Headline], list[Section]]:
    """Every section of the report, in reading order."""
    k = data.min_cell or 1
    headlines, mix = headline_section(data)
    sections = [
        mix,
        referral_rate_section(data),
        time_to_imaging_section(data, k),
        pattern_section(data),
        documentation_section(data),
        validation_section(data),
        rule_performance_section(data, k),
    ]
    return headlines, sections

"""The report's content: headline numbers, charts and tables, worked out from ReportData.

Each builder returns a Section. A builder whose mart is missing or empty returns
a Section with `unavailable` set, which the template shows as a clear "not
available" note in the section's place; nothing here raises on absent data.
Small cells are hidden (pipelines.report.suppression) before any rate is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from pipelines.cohorts.suppression import is_small, suppress_events, suppress_partition
from pipelines.report import charts
from pipelines.report.charts import window_label
from pipelines.report.data import ReportData
from pipelines.report.palette import POORLY_DOCUMENTED, RATE_OUTCOME, index_tiers, tier_label
from pipelines.scoring.rules import tier_order

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


def tier_mix(data: ReportData, k: int | None) -> pd.DataFrame | None:
    """Index presentations per tier, low split by documentation, with suppression flags."""
    index = data.mart("index_presentations")
    if index is None:
        return None
    category = (
        index["index_tier"]
        .astype("string")
        .where(~((index["index_tier"] == "low") & index["is_poorly_documented"]), POORLY_DOCUMENTED)
    )
    order = [*index_tiers(), POORLY_DOCUMENTED]
    extra = sorted(set(category.dropna()) - set(order))
    counts = index["n"].groupby(category).sum().reindex(order + extra, fill_value=0)
    mix = pd.DataFrame({"category": counts.index, "n": counts.to_numpy()})
    mix["hidden"] = no_rows(mix.index) if k is None else suppress_partition(mix["n"], k)
    return mix


def care_gap_summary(data: ReportData, k: int | None) -> Headline:
    """Care gaps in all and by kind (counts by care_gap, in the mart's order)."""
    gaps = data.marts.get("care_gaps")
    if gaps is None:
        return Headline("Care gaps", "not available", "the care_gaps mart is missing")
    total = pd.Series([int(gaps["n"].sum())])
    value = fmt_count(total, is_small(total, k) if k else None).iloc[0]
    hidden = suppress_partition(gaps["n"], k) if k else None
    detail = "; ".join(
        f"{str(name).replace('_', ' ')}: {text}"
        for name, text in zip(gaps["care_gap"], fmt_count(gaps["n"], hidden), strict=True)
    )
    return Headline("Care gaps", value, detail or "none")


def overuse_summary(data: ReportData, k: int | None) -> Headline:
    """HEDIS-style share of low-tier index presentations not imaged within 28 days."""
    overuse = data.mart("imaging_overuse")
    if overuse is None:
        return Headline("Imaging overuse", "not available", "no low-tier index presentations")
    row = overuse[overuse["stratum_type"] == "all"].iloc[[0]].reset_index(drop=True)
    hidden_den, hidden = (
        suppress_events(row["n_eligible"], row["n_imaged"], k, row["n_censored"])
        if k
        else (no_rows(row.index),) * 2
    )
    value = fmt_share(row["share_not_imaged"], hidden).iloc[0]
    detail = (
        f"share of low-tier index presentations aged 18–75 not imaged within 28 days "
        f"(higher is better); {fmt_count(row['n_eligible'], hidden_den).iloc[0]} eligible"
    )
    if not hidden.iloc[0]:
        detail += f", 95% CI {fmt_share(row['ci_low']).iloc[0]}–{fmt_share(row['ci_high']).iloc[0]}"
    return Headline("Not imaged (low tier)", value, detail)


def headline_section(data: ReportData, k: int | None) -> tuple[list[Headline], Section]:
    """The numbers a reader sees first, and the tier mix chart beneath them."""
    mix = tier_mix(data, k)
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
        total = pd.Series([int(mix["n"].sum())])
        headlines.append(
            Headline(
                "Index episodes",
                fmt_count(total, is_small(total, k) if k else None).iloc[0],
                "new back-pain episodes (no back pain in the 180 days before)",
            )
        )
        share = mix["n"] / max(int(total.iloc[0]), 1)
        mix_text = fmt_share(share, mix["hidden"], digits=0)
        top = mix["category"].isin(["urgent", "high"])
        top_share = pd.Series([share[top].sum()])
        headlines.append(
            Headline(
                "Urgent or high tier",
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
                "Index presentations": fmt_count(mix["n"], mix["hidden"]),
                "Share": mix_text,
            },
        )[["Tier", "Index presentations", "Share"]]
        section.tables.append(table(shown, ["Index presentations", "Share"]))
    headlines.append(care_gap_summary(data, k))
    headlines.append(overuse_summary(data, k))
    return headlines, section


# ------------------------------------------------------------------------- referral rates


def summary_rows(data: ReportData, stratum_type: str, k: int | None) -> pd.DataFrame | None:
    """cohort_summary rows of one stratum type for the report's outcome, with hidden flags."""
    summary = data.mart("cohort_summary")
    if summary is None:
        return None
    rows = summary[
        (summary["stratum_type"] == stratum_type) & (summary["outcome"] == RATE_OUTCOME)
    ].reset_index(drop=True)
    if rows.empty:
        return None
    if k is None:
        rows["hide_eligible"] = no_rows(rows.index)
        rows["hidden"] = no_rows(rows.index)
    else:
        rows["hide_eligible"], rows["hidden"] = suppress_events(
            rows["n_eligible"], rows["n_events"], k, rows["n_censored"]
        )
    return rows


def referral_rate_section(data: ReportData, k: int | None) -> Section:
    section = Section(
        "referral_rate",
        "Imaging by index tier and window",
        "Share of index presentations imaged within each window, with Wilson 95% intervals. "
        "Only presentations followed up for the whole window count (the rest are censored).",
    )
    rows = summary_rows(data, "index_tier", k)
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
            "Imaged": fmt_count(rows["n_events"], rows["hidden"]),
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

    A curve is drawn only while k or more presentations are at risk: past that, one
    step of the curve is one or a few people. A tier with fewer than k at day 0 is not
    drawn at all.
    """
    at_start = curves[curves["day"] == curves["day"].min()].set_index("tier")["n_at_risk"]
    too_small = sorted(at_start.index[at_start < k])
    kept = curves[~curves["tier"].isin(too_small) & (curves["n_at_risk"] >= k)]
    return kept, too_small


def time_to_imaging_section(data: ReportData, k: int | None) -> Section:
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
    if k is not None:
        curves, too_small = curves_to_draw(curves, k)
        section.notes.append(
            f"With a minimum cell of {k}, each curve stops where fewer than {k} "
            "presentations remain at risk"
            + (f"; not drawn: {', '.join(tier_label(t) for t in too_small)}." if too_small else ".")
        )
    if curves.empty:
        section.unavailable = "Every curve is below the minimum cell size."
        return section
    rank = {t: i for i, t in enumerate(("all", *tier_order()))}
    curves = curves.assign(order=curves["tier"].map(rank)).sort_values(["order", "day"])
    section.charts.append(charts.km_chart(curves))
    return section


def pattern_section(data: ReportData, k: int | None) -> Section:
    section = Section(
        "patterns",
        "Red-flag patterns and imaging",
        "Patterns are the set of red flags present at the index presentation. "
        "The first table lists the patterns most often followed by imaging, the second "
        "those most often not followed by it.",
    )
    rows = summary_rows(data, "pattern", k)
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


def documentation_section(data: ReportData, k: int | None) -> Section:
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
    if k is not None:
        values = values.where(~is_small(quality["n_presentations"], k))
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


def humanise(values: pd.Series) -> pd.Series:
    """A snake_case value as words: prior_cancer -> prior cancer."""
    return values.astype("string").str.replace("_", " ")


def rule_name(rule_type: pd.Series, rule: pd.Series) -> pd.Series:
    """'tier ≥ high' for a tier threshold, the flag's name in words for a flag."""
    is_tier = rule_type.astype("string").str.startswith("tier").fillna(False)
    return ("tier ≥ " + rule.astype("string")).where(is_tier, humanise(rule))


def rule_performance_section(data: ReportData, k: int | None) -> Section:
    section = Section(
        "rule_performance",
        "Rule performance",
        "How well each tier threshold (index tier at or above it) and each red flag at the "
        "index presentation predicts lung cancer or bone metastasis diagnosed within 365 "
        "days. Every index presentation counts; one without such a diagnosis is a negative.",
    )
    performance = data.mart("rule_performance")
    if performance is None:
        section.unavailable = (
            "No diagnoses were loaded, so there is nothing to measure the rules against "
            "(rule_performance is empty)."
        )
        return section
    hidden = no_rows(performance.index)
    if k is not None:
        for column in COUNT_COLUMNS:
            hidden = hidden | is_small(performance[column], k)
    shown = pd.DataFrame(index=performance.index)
    if not (performance["target"] == performance["target"].iloc[0]).all():
        shown["Target"] = humanise(performance["target"])
    shown["Rule"] = rule_name(performance["rule_type"], performance["rule"])
    for column in COUNT_COLUMNS:
        shown[column.upper()] = fmt_count(performance[column], hidden)
    for column, label in SHARE_COLUMNS.items():
        shown[label] = fmt_share(performance[column].astype("Float64"), hidden)
    shown["LR+"] = fmt_number(performance["lr_positive"].astype("Float64"), 2).where(
        ~hidden, SUPPRESSED
    )
    numeric = [c.upper() for c in COUNT_COLUMNS] + list(SHARE_COLUMNS.values()) + ["LR+"]
    section.tables.append(table(shown, numeric))
    if k is not None and hidden.any():
        section.notes.append(f"Rows with any of TP, FP, FN, TN under {k} are suppressed whole.")
    return section


def build_sections(data: ReportData, k: int | None) -> tuple[list[Headline], list[Section]]:
    """Every section of the report, in reading order."""
    headlines, mix = headline_section(data, k)
    sections = [
        mix,
        referral_rate_section(data, k),
        time_to_imaging_section(data, k),
        pattern_section(data, k),
        documentation_section(data, k),
        validation_section(data),
        rule_performance_section(data, k),
    ]
    return headlines, sections

"""The HTML report: built from a hand-made warehouse, checked as text and in headless Chromium.

The fixture writes the marts with the column names of issue 5 (index_presentations,
cohort_summary, time_to_referral) and of the cohorts branch's SQL for the others,
with counts chosen so that every number the report shows can be worked out by hand.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipelines.cohorts.definition import load_definition
from pipelines.disclosure.release import Release, aggregate_rules, read_tables, store_release
from pipelines.disclosure.suppression import suppress
from pipelines.published import write_copy
from pipelines.report import write_report
from pipelines.report.palette import tier_colours
from pipelines.report.sections import curves_to_draw
from pipelines.scoring.rules import tier_actions
from pipelines.warehouse import create_schemas
from tests.support.browser import browse, page_requests

RUN_ID = "20240701T000000Z-feedc0de"
RULES_VERSION = "3f9a1c2b7d4e"
DATA_END = "2024-06-30"

# Index presentations per tier; 5 of the 90 low ones are poorly documented.
TIER_COUNTS = {"urgent": 12, "high": 30, "moderate": 60, "low": 90}
N_POORLY_DOCUMENTED = 5
N_PRESENTATIONS = 250
WINDOWS = (1, 14, 28, 90)
# (n_eligible, n_events) of imaging_any per index tier and window.
TIER_RATES = {
    "urgent": [(12, 9), (12, 11), (12, 12), (12, 12)],
    "high": [(30, 6), (29, 18), (29, 20), (19, 15)],
    "moderate": [(60, 3), (60, 15), (49, 20), (45, 24)],
    "low": [(90, 2), (90, 8), (79, 12), (70, 16)],
}
# (pattern, n_eligible, n_events) at 28 days.
PATTERNS = [
    ("none", 80, 8),
    ("age_50_plus", 40, 20),
    ("prior_cancer+night_pain", 15, 14),
    ("night_pain", 25, 5),
    ("thoracic_pain+age_50_plus", 30, 25),
    ("ever_smoked", 50, 30),
]
FIELDS = ("back_pain", "prior_cancer", "night_pain", "smoking_status")
EXPECTED_CHARTS = {"tier_mix", "referral_rate", "time_to_imaging", "documentation"}


def wilson(events: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval, written out from its textbook formula."""
    p = events / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def summary_row(
    stratum_type: str, value: str, window: int, n: int, events: int, n_stratum: int
) -> dict:
    low, high = wilson(events, n)
    return {
        "stratum_type": stratum_type,
        "stratum_value": value,
        "window_days": window,
        "outcome": "imaging_any",
        "n_eligible": n,
        "n_events": events,
        "rate": events / n,
        "ci_low": low,
        "ci_high": high,
        "median_days_to_event": 3.0,
        "n_censored": n_stratum - n,
        "n_died": 0,
    }


def index_presentations() -> pd.DataFrame:
    tiers = [t for t, n in TIER_COUNTS.items() for _ in range(n)]
    n = len(tiers)
    completeness = np.full(n, 0.9)
    completeness[n - N_POORLY_DOCUMENTED :] = 0.4  # the last rows are low-tier ones
    return pd.DataFrame(
        {
            "encounter_id": [f"E{i}" for i in range(n)],
            "patient_id": [f"P{i}" for i in range(n)],
            "index_date": pd.Timestamp("2024-01-01"),
            "age_years": 55,
            "index_tier": tiers,
            "episode_max_tier": tiers,
            "score": 1,
            "completeness": completeness,
            "days_to_imaging_any": pd.array([None] * n, dtype="Int64"),
            "followup_days": 181,
        }
    )


def time_to_referral() -> pd.DataFrame:
    """Curves that rise by 1/n_at_risk a day for five days; urgent drops below 11 at day 2."""
    frames = []
    for tier, n in {"all": sum(TIER_COUNTS.values()), **TIER_COUNTS}.items():
        day = np.arange(91)
        events = np.where(day < 5, 1, 0)
        at_risk = n - np.concatenate([[0], np.cumsum(events)[:-1]])
        survival = np.cumprod(1 - events / at_risk)
        frames.append(
            pd.DataFrame(
                {
                    "tier": tier,
                    "day": day,
                    "n_at_risk": at_risk,
                    "n_events": events,
                    "cumulative_incidence": 1 - survival,
                    "ci_low": np.clip(1 - survival - 0.05, 0, 1),
                    "ci_high": np.clip(1 - survival + 0.05, 0, 1),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def build_warehouse(
    path: Path, *, marts: bool = True, diagnoses: bool = True, min_cell: int = 1
) -> Path:
    """A warehouse with every schema, ops rows and (unless marts=False) the marts."""
    con = duckdb.connect(str(path))
    create_schemas(con)
    con.execute(
        "INSERT INTO staging.intake (encounter_id, patient_id, encounter_date, age_years, sex) "
        f"SELECT 'E' || i, 'P' || i, DATE '2024-01-01', 50, 'F' FROM range({N_PRESENTATIONS}) t(i)"
    )
    con.execute(
        "INSERT INTO ops.run_log (run_id, started_at, finished_at, status, input_dir, "
        "rules_version, data_end, details) VALUES (?, TIMESTAMP '2024-07-01 00:00:00', "
        "TIMESTAMP '2024-07-01 00:01:00', 'success', 'data/sample', ?, ?, ?)",
        [RUN_ID, RULES_VERSION, DATA_END, json.dumps({"windows": [1, 14, 28, 90]})],
    )
    # The shape of ops.ingest_manifest on the ingest branch; unchanged files keep the row
    # of the run that loaded them, replaced versions no longer feed staging.
    manifest = pd.DataFrame(
        {
            "file_path": [
                "/in/intake.csv",
                "/in/referrals.csv",
                "/in/diagnoses.csv",
                "/in/extra.csv",
                "/in/referrals.csv",
            ],
            "size_bytes": 100,
            "content_hash": ["h1", "h2", "h3", "h4", "h0"],
            "table_name": ["intake", "referrals", "diagnoses", "intake", "referrals"],
            "rows_read": [252, 40, 7, 3, 38],
            "rows_accepted": [250, 40, 7, 0, 38],
            "rows_quarantined": [2, 0, 0, 0, 0],
            "status": ["loaded", "loaded", "loaded", "rejected", "replaced"],
            "message": [None, None, None, "extra.csv: no encounter_id column", None],
            "run_id": [RUN_ID, RUN_ID, "20240601T000000Z-0ld0ld00", RUN_ID, "old"],
            "ingested_at": pd.Timestamp("2024-07-01"),
        }
    )
    con.register("manifest", manifest)
    con.execute("CREATE OR REPLACE TABLE ops.ingest_manifest AS SELECT * FROM manifest")
    con.unregister("manifest")
    if marts:
        index = index_presentations()
        summary = pd.DataFrame(
            [
                summary_row("index_tier", tier, w, n, e, TIER_COUNTS[tier])
                for tier, rows in TIER_RATES.items()
                for w, (n, e) in zip(WINDOWS, rows, strict=True)
            ]
            + [summary_row("pattern", p, 28, n, e, n) for p, n, e in PATTERNS]
        )
        curves = time_to_referral()
        gaps = pd.DataFrame(
            {
                "encounter_id": [f"G{i}" for i in range(12)],
                "index_tier": ["emergency"] * 3 + ["high"] * 9,
                "care_gap": ["emergency_without_spine_imaging"] * 3 + ["high_without_imaging"] * 9,
                "days_since_index": 30,
            }
        )
        low, high = wilson(60, 80)
        overuse = pd.DataFrame(
            {
                "measure": "hedis_lbp",
                "stratum_type": ["all", "age_group"],
                "stratum_value": ["all", "18-64"],
                "window_days": 28,
                "n_eligible": [80, 80],
                "n_imaged": [20, 20],
                "n_not_imaged": [60, 60],
                "share_not_imaged": [0.75, 0.75],
                "ci_low": [low, low],
                "ci_high": [high, high],
                "n_censored": [0, 0],
            }
        )
        quality = pd.DataFrame(
            [
                {
                    "tier": t,
                    "field": f,
                    "n_presentations": 100,
                    "n_documented": 100 - 10 * i - j,
                    "n_missing": 10 * i + j,
                    "share_documented": (100 - 10 * i - j) / 100,
                }
                for i, f in enumerate(FIELDS)
                for j, t in enumerate(("all", "urgent", "high", "moderate", "low"))
            ]
        )
        performance = pd.DataFrame(
            {
                "target": "any_target",
                "rule_type": ["tier_at_or_above", "flag"],
                "rule": ["high", "prior_cancer"],
                "tp": [12, 3],
                "fp": [30, 40],
                "fn": [14, 11],
                "tn": [136, 138],
                "sensitivity": [12 / 26, 3 / 14],
                "specificity": [136 / 166, 138 / 178],
                "ppv": [12 / 42, 3 / 43],
                "npv": [136 / 150, 138 / 149],
                "lr_positive": [(12 / 26) / (30 / 166), (3 / 14) / (40 / 178)],
            }
        )
        for measure in ("sensitivity", "specificity", "ppv", "npv", "lr_positive"):
            performance[f"{measure}_ci_low"] = performance[measure] * 0.5
            performance[f"{measure}_ci_high"] = performance[measure] * 1.5
        if not diagnoses:
            performance = performance.iloc[0:0]
        for name, frame in {
            "index_presentations": index,
            "cohort_summary": summary,
            "time_to_referral": curves,
            "care_gaps": gaps,
            "imaging_overuse": overuse,
            "documentation_quality": quality,
            "rule_performance": performance,
        }.items():
            con.register("frame", frame)
            con.execute(f"CREATE TABLE marts.{name} AS SELECT * FROM frame")
            con.unregister("frame")
        store(con, min_cell)
    write_copy(con, path)
    con.close()
    return path


def store(con: duckdb.DuckDBPyConnection, min_cell: int) -> None:
    """The release of the hand-made marts: with min_cell 1 nothing hidden; otherwise each
    table suppressed on its own (the audit is tested in tests/disclosure; here only how
    the report shows a release)."""
    definition = load_definition()
    tables = read_tables(con, definition, min_cell)
    rules = aggregate_rules(definition)
    tables = {name: suppress(frame, rules[name], min_cell) for name, frame in tables.items()}
    store_release(con, RUN_ID, Release(min_cell, tables, {"min_cell": min_cell}))


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return build_warehouse(tmp_path / "w.duckdb")


# ------------------------------------------------------------------ reading the HTML


class Page(HTMLParser):
    """The parts of a page the tests look at: charts, sections, table cells, references."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, int] = {}  # data-chart -> drawing elements inside it
        self.sections: dict[str, str] = {}  # id -> class
        self.references: list[str] = []  # every src/href/xlink:href value
        self.meta_csp: str | None = None
        self.cells: list[str] = []
        self.text: list[str] = []
        self._chart: str | None = None
        self._depth = 0
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("src", "href", "xlink:href", "action", "data"):
            if a.get(key):
                self.references.append(a[key])
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy":
            self.meta_csp = a.get("content")
        if tag == "section" and "id" in a:
            self.sections[a["id"]] = a.get("class") or ""
        if tag == "svg" and a.get("data-chart"):
            self._chart = a["data-chart"]
            self.charts[self._chart] = 0
            self._depth = 0
        if self._chart is not None:
            if tag == "svg":
                self._depth += 1
            if tag in ("path", "rect", "use", "polyline", "line", "image") and (
                a.get("d") or tag != "path"
            ):
                self.charts[self._chart] += 1
        if tag in ("td", "th"):
            self._in_cell = True
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._chart is not None and tag == "svg":
            self._depth -= 1
            if self._depth == 0:
                self._chart = None
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_cell:
            self.cells[-1] += data


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def section_text(html: str, key: str) -> str:
    match = re.search(rf'<section id="{key}".*?</section>', html, re.S)
    assert match, f"section {key} missing"
    return re.sub(r"<[^>]+>", " ", match.group(0))


# --------------------------------------------------------------- the report as text


def test_report_shows_hand_worked_numbers(warehouse: Path, tmp_path: Path):
    html = write_report(warehouse, tmp_path / "r.html").read_text(encoding="utf-8")
    page = parse(html)
    assert set(page.charts) == EXPECTED_CHARTS
    assert all(n > 0 for n in page.charts.values()), page.charts
    # Meta: run, data end, rules version.
    assert RUN_ID in html and RULES_VERSION in html and DATA_END[:7] in html
    assert DATA_END not in html  # the data end as a month, like the export's manifest
    head = section_text(html, "headline")
    assert "250" in head  # presentations
    assert "192" in head  # 12 + 30 + 60 + 90 index episodes
    assert "Urgent 6%" in head and "High 16%" in head  # 12/192 = 6.25%, 30/192 = 15.6%
    # The tiers whose action is imaging (red_flags.yml): none at emergency here.
    assert re.search(r"Emergency, urgent or high tier\s+22%", head)  # 42/192 = 21.9%
    # Tier mix: low split 85 well documented + 5 poorly documented; each tier with its
    # expected action from red_flags.yml.
    mix = section_text(html, "tier_mix")
    assert re.search(r"Low\s+no imaging within 28 days\s+85\s", mix)
    assert re.search(r"Low \(poorly documented\)\s+5\s", mix)
    assert re.search(r"Urgent\s+spine imaging within 7 days", mix)
    # Care gaps: 12 rows, 3 emergency and 9 high; overuse 60 of 80 not imaged.
    assert re.search(r"Care gaps\s+12\s", head)
    assert "75.0%" in head and "80 eligible" in head
    low, high = wilson(60, 80)
    assert f"{low:.1%}" in head and f"{high:.1%}" in head
    # Rates: high tier at 14 days, 18 of 29.
    rates = section_text(html, "referral_rate")
    low, high = wilson(18, 29)
    assert f"62.1% ({low * 100:.1f}–{high * 100:.1f})" in rates
    # Patterns: most often followed first = ever_smoked (30 imaged); most often not
    # followed first = none (72 not imaged).
    patterns = section_text(html, "patterns")
    followed, not_followed = patterns.split("Most often not followed by imaging")
    header = ["Pattern", "Eligible", "Imaged", "Not", "imaged", "Rate", "imaged", "(95%", "CI)"]
    followed = followed.split("Most often followed by imaging")[1].split()
    assert followed[:9] == header
    assert followed[9:15] == ["ever", "smoked", "50", "30", "20", "60.0%"]
    assert not_followed.split()[:9] == header
    assert not_followed.split()[9:16] == ["no", "red", "flags", "80", "8", "72", "10.0%"]
    # Validation: the rejected file is listed; rule performance is shown.
    validation = section_text(html, "validation")
    assert "extra.csv: no encounter_id column" in validation
    rows = " ".join(validation.split()).split("Loaded by ")[1]
    assert rows == (
        "intake.csv intake loaded 252 250 2 this run "
        "referrals.csv referrals loaded 40 40 0 this run "  # not the replaced version
        "diagnoses.csv diagnoses loaded 7 7 0 an earlier run "  # unchanged since
        "extra.csv intake rejected 3 0 0 extra.csv: no encounter_id column this run"
    )
    assert "an earlier run" in validation  # diagnoses.csv was unchanged
    assert "prior cancer" in section_text(html, "rule_performance")
    assert "suppressed" not in html


def test_the_report_shows_the_release_it_finds(tmp_path: Path):
    warehouse = build_warehouse(tmp_path / "w.duckdb", min_cell=11)
    html = write_report(warehouse, tmp_path / "r.html").read_text(encoding="utf-8")
    con = duckdb.connect(str(warehouse), read_only=True)
    mix = con.sql("SELECT category, n FROM release.index_tier_mix").df().set_index("category")
    summary = con.sql(
        "SELECT stratum_value, window_days, n_eligible, n_events FROM release.cohort_summary "
        "WHERE stratum_type = 'index_tier' AND outcome = 'imaging_any'"
    ).df()
    con.close()
    assert "11 (counts 1–10 suppressed" in html
    # 5 poorly documented is small, and it takes a second cell of the tier mix with it
    assert pd.isna(mix.loc["low_poorly_documented", "n"])
    shown = section_text(html, "tier_mix")
    labels = {"urgent": "Urgent", "high": "High", "moderate": "Moderate", "low": "Low"}
    actions = tier_actions()
    for category, label in labels.items():
        n = mix.loc[category, "n"]
        expected = "suppressed" if pd.isna(n) else f"{int(n):,}"
        action = re.escape(actions[category])
        assert re.search(rf"{label}\s+{action}\s+{expected}\s", shown), (category, expected)
    assert re.search(r"Low \(poorly documented\)\s+suppressed", shown)
    rates = section_text(html, "referral_rate")
    rows = dict(
        ((tier, int(days)), (eligible, imaged))
        for tier, days, eligible, imaged in re.findall(
            r"(Urgent|High|Moderate|Low)\s+≤ (\d+) days?\s+(\S+)\s+(\S+)", rates
        )
    )
    for row in summary.itertuples():
        text = rows[(labels[row.stratum_value], row.window_days)]
        for value, cell in zip((row.n_eligible, row.n_events), text, strict=True):
            assert cell == ("suppressed" if pd.isna(value) else f"{int(value):,}")
    # every curve has 1 event on each of days 0-4: small counts from day 0, so no point
    # of any curve is released
    assert "Every curve is below the minimum cell size" in section_text(html, "time_to_imaging")


def test_curves_stop_where_fewer_than_k_are_at_risk():
    curves = time_to_referral()
    # Urgent: 12 at risk on day 0, 11 on day 1, 10 on day 2 -> days 0 and 1 only.
    # High (30 at risk, 25 from day 5 on) and the rest stay whole (91 days).
    kept, left_out = curves_to_draw(curves, 11)
    assert kept.groupby("tier")["day"].agg(list).to_dict()["urgent"] == [0, 1]
    assert kept.groupby("tier").size().to_dict() == {
        "all": 91,
        "urgent": 2,
        "high": 91,
        "moderate": 91,
        "low": 91,
    }
    assert left_out == []
    kept, left_out = curves_to_draw(curves, 13)  # urgent starts with 12 at risk
    assert left_out == ["urgent"] and "urgent" not in set(kept["tier"])


def test_missing_marts_degrade_to_not_available(tmp_path: Path):
    warehouse = build_warehouse(tmp_path / "w.duckdb", marts=False)
    html = write_report(warehouse, tmp_path / "r.html").read_text(encoding="utf-8")
    page = parse(html)
    assert page.charts == {}
    for key in (
        "tier_mix",
        "referral_rate",
        "time_to_imaging",
        "patterns",
        "documentation",
        "rule_performance",
    ):
        assert page.sections[key] == "unavailable-section", key
        assert "Not available." in section_text(html, key)
    # ops tables are there, so the validation section still shows.
    assert page.sections["validation"] == "available"
    assert "250" in section_text(html, "headline")


def test_rule_performance_without_diagnoses_says_why(tmp_path: Path):
    warehouse = build_warehouse(tmp_path / "w.duckdb", diagnoses=False)
    html = write_report(warehouse, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No diagnoses were loaded" in section_text(html, "rule_performance")
    assert set(parse(html).charts) == EXPECTED_CHARTS


def test_report_is_self_contained(warehouse: Path, tmp_path: Path):
    html = write_report(warehouse, tmp_path / "r.html").read_text(encoding="utf-8")
    page = parse(html)
    assert page.meta_csp is not None and "default-src 'none'" in page.meta_csp
    # Nothing refers outside the page: only fragment links or data: URIs.
    outside = [r for r in page.references if not r.startswith(("#", "data:"))]
    assert outside == []
    assert "<script" not in html.lower()
    assert not re.search(r"@import|url\(\s*['\"]?(https?:|//)", html)


def test_report_is_deterministic(warehouse: Path, tmp_path: Path):
    first = write_report(warehouse, tmp_path / "a.html").read_bytes()
    second = write_report(warehouse, tmp_path / "b.html").read_bytes()
    assert first == second


# ------------------------------------------------------------------------- the CLI


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "report", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_writes_the_report_beside_the_warehouse(warehouse: Path):
    result = cli("--warehouse", str(warehouse))
    assert result.returncode == 0, result.stderr
    out = warehouse.parent / "report.html"
    assert str(out) in result.stdout
    assert "Minimum cell" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--warehouse", "{tmp}/none.duckdb"], 1, "none.duckdb: no warehouse here"),
        (["--out", "{tmp}/no/such/dir/r.html"], 1, "no such directory for the report"),
    ],
)
def test_cli_bad_input_is_one_clear_line(
    warehouse: Path, tmp_path: Path, args: list[str], code: int, message: str
):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--warehouse" not in args:
        args += ["--warehouse", str(warehouse)]
    result = cli(*args)
    assert result.returncode == code
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------- in a browser


def test_net_log_sees_a_request_when_a_page_makes_one(tmp_path: Path):
    """The control for the next test: the check does catch a page that reaches out."""
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<img src="http://example.invalid/pixel.png">', encoding="utf-8")
    net_log = tmp_path / "leaky-net.json"
    browse(leaky, tmp_path / "leaky", f"--log-net-log={net_log}", "--dump-dom")
    assert page_requests(net_log) == ["http://example.invalid/pixel.png"]


def check_in_chromium(report: Path, tmp_path: Path) -> Path:
    """Open the report in headless Chromium: every chart drawn, every section there
    (the data has diagnoses, so rule performance too), no request leaving the page.
    Returns a full-page screenshot."""
    net_log = tmp_path / "net.json"
    result = browse(report, tmp_path / "dom", f"--log-net-log={net_log}", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    page = parse(result.stdout)
    # Every chart is in the rendered DOM and has drawing elements.
    assert set(page.charts) == EXPECTED_CHARTS
    assert all(n >= 5 for n in page.charts.values()), page.charts
    assert all(page.sections[k] == "available" for k in page.sections), page.sections
    # No request leaves the page.
    assert page_requests(net_log) == []

    screenshot = tmp_path / "report.png"
    result = browse(
        report, tmp_path / "shot", f"--screenshot={screenshot}", "--window-size=1280,4000"
    )
    assert screenshot.exists(), result.stderr[-2000:]
    print(f"screenshot: {screenshot}")
    return screenshot


def test_report_in_headless_chromium(warehouse: Path, tmp_path: Path):
    screenshot = check_in_chromium(write_report(warehouse, tmp_path / "report.html"), tmp_path)
    pixels = np.asarray(Image.open(screenshot).convert("RGB")).reshape(-1, 3)
    # Each tier colour is painted over far more than its 14x14 legend swatch: the
    # bars, points and curves of the charts are drawn.
    for tier in ("urgent", "high", "moderate", "low"):
        rgb = np.array([int(tier_colours()[tier][i : i + 2], 16) for i in (1, 3, 5)])
        n = int((np.abs(pixels.astype(int) - rgb).sum(axis=1) <= 12).sum())
        assert n > 1500, (tier, n)


def test_sample_report_in_headless_chromium(sample_run, tmp_path: Path):
    """The report of the real pipeline run on data/sample/, as `make run` writes it."""
    check_in_chromium(sample_run.warehouse.parent / "report.html", tmp_path)

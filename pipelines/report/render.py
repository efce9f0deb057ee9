"""Render the report to one self-contained HTML file.

Everything is inline: styles in a <style> element, charts as <svg> elements, no
script at all. A Content-Security-Policy meta tag forbids every fetch, so even a
stray reference could not make the page reach the network.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from pipelines.errors import UserError
from pipelines.outputs import write_text_atomically
from pipelines.report.data import load_report_data
from pipelines.report.palette import tier_colours, tier_label
from pipelines.report.sections import build_sections

REPORT_NAME = "report.html"
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def default_report_path(warehouse: str | Path) -> Path:
    """The report sits beside its warehouse: data/warehouse.duckdb -> data/report.html."""
    return Path(warehouse).parent / REPORT_NAME


def environment() -> Environment:
    return Environment(
        loader=PackageLoader("pipelines.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def minimum_cell_text(min_cell: int | None) -> str:
    if min_cell is None:
        return "no release in the warehouse"
    if min_cell <= 1:
        return "1 (no count hidden)"
    return (
        f"{min_cell} (counts 1–{min_cell - 1} suppressed, and more where they could be worked out)"
    )


def docs_href(docs_index: str | Path | None, report_dir: Path) -> str | None:
    """The link from the report to the validation pages' index, relative to the report
    so that both can move together (None: no index there)."""
    if docs_index is None or not Path(docs_index).is_file():
        return None
    try:
        relative = os.path.relpath(Path(docs_index).resolve(), report_dir.resolve())
    except ValueError:  # another drive
        return Path(docs_index).resolve().as_uri()
    return quote(Path(relative).as_posix())


def render_report(
    warehouse: str | Path, run_id: str | None = None, docs_link: str | None = None
) -> str:
    """The report's HTML text for the warehouse (read-only)."""
    data = load_report_data(warehouse, run_id)
    headlines, sections = build_sections(data)
    min_cell = data.min_cell
    run = data.run or {}
    meta = {
        "Run": run.get("run_id") or run_id or "not recorded",
        "Data end": str(run["data_end"])[:7] if run.get("data_end") is not None else "not recorded",
        "Rules version": run.get("rules_version") or "not recorded",
        "Minimum cell": minimum_cell_text(min_cell),
    }
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            csp=CONTENT_SECURITY_POLICY,
            meta=meta,
            docs_link=docs_link,
            headlines=headlines,
            sections=sections,
            tiers=[(tier_label(t), c) for t, c in tier_colours().items() if t != "all"],
        )
    )


def write_report(
    warehouse: str | Path,
    out: str | Path | None = None,
    run_id: str | None = None,
    docs_index: str | Path | None = None,
) -> Path:
    """Write the report atomically (temporary file, then rename) and return its path.

    It links to the validation pages' index `docs_index`, by default the one beside the
    warehouse, when that exists.
    """
    out = Path(out) if out is not None else default_report_path(warehouse)
    if docs_index is None:
        from pipelines.validation.docs import INDEX_FILE, default_docs_dir

        docs_index = default_docs_dir(warehouse) / INDEX_FILE
    html = render_report(warehouse, run_id, docs_href(docs_index, out.parent))
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: no such directory for the report; create it or pass --out")
    return write_text_atomically(out, html)

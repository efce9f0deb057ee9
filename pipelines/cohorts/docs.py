"""The marts' documentation: one YAML file per mart beside its SQL (sql/marts/<mart>.yml).

Publishing turns it into COMMENT ON, and `python -m pipelines.cohorts.docs` writes the
mart sections of docs/marts.md from it, so the description analysts read in DuckDB and
in the docs is one text. A column written `<red flag>` stands for every red flag of
cohorts.yml, and `days_to_<outcome>` for every outcome.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from pipelines import resources
from pipelines.cohorts.definition import CohortDefinition

DOCS_FOLDER = "sql/marts"
BEGIN, END = "<!-- marts: begin (generated from sql/marts/*.yml) -->", "<!-- marts: end -->"


@dataclass
class MartDoc:
    name: str
    description: str = ""
    notes: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)


def load_mart_docs() -> dict[str, MartDoc]:
    """Every mart's documentation, by mart name."""
    docs: dict[str, MartDoc] = {}
    for path in resources.active().paths(DOCS_FOLDER, ".yml"):
        raw = resources.read_yaml(path)
        try:
            doc = MartDoc(raw["mart"], raw["description"], raw.get("notes", ""))
            for column in raw["columns"]:
                doc.columns[column["name"]] = column["description"]
                doc.types[column["name"]] = column["type"]
        except (KeyError, TypeError) as exc:
            raise resources.ResourceError(f"{path}: not a mart description ({exc!r})") from None
        docs[doc.name] = doc
    return docs


def column_comment(doc: MartDoc, column: str, definition: CohortDefinition) -> str:
    """The documented meaning of a column; an undocumented one is a bug in the docs."""
    if column in doc.columns:
        return doc.columns[column]
    if column in definition.red_flags and "<red flag>" in doc.columns:
        return f"{column}: " + doc.columns["<red flag>"]
    outcome = column.removeprefix("days_to_")
    if outcome in definition.outcome_names and "days_to_<outcome>" in doc.columns:
        return doc.columns["days_to_<outcome>"].replace("<outcome>", outcome)
    raise resources.ResourceError(
        f"{DOCS_FOLDER}/{doc.name}.yml: column {doc.name}.{column} is not documented; add it"
    )


def markdown(docs: dict[str, MartDoc], order: list[str]) -> str:
    """The mart sections of docs/marts.md."""
    parts = []
    for name in order:
        doc = docs[name]
        rows = [
            f"| {column} | {doc.types[column]} | {meaning} |"
            for column, meaning in doc.columns.items()
        ]
        section = [f"## {name}", "", doc.description, "", "| column | type | meaning |",
                   "|---|---|---|", *rows]  # fmt: skip
        if doc.notes:
            section += ["", doc.notes]
        parts.append("\n".join(section))
    return "\n\n".join(parts)


def rewrite(path: Path, generated: str) -> str:
    """`path`'s text with the part between the markers replaced by `generated`."""
    text = path.read_text(encoding="utf-8")
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    return f"{before}{BEGIN}\n{generated}\n{END}{after}"


def main() -> None:
    from pipelines.cohorts.build import mart_names

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs") / "marts.md"
    path.write_text(rewrite(path, markdown(load_mart_docs(), mart_names())), encoding="utf-8")
    print(f"wrote the mart sections of {path}")


if __name__ == "__main__":
    main()

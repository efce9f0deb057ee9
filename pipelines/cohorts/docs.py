"""docs/marts.md is the one description of the marts; publishing turns it into COMMENT ON.

Each mart is a `## name` section: the first paragraph describes the table, and a
markdown table `| column | type | meaning |` describes the columns. A column written
`<red flag>` stands for every red flag of cohorts.yml, and `days_to_<outcome>` for
every outcome, so the document does not repeat itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipelines.cohorts.definition import CohortDefinition
from pipelines.paths import PROJECT_ROOT

MARTS_DOC = PROJECT_ROOT / "docs" / "marts.md"


@dataclass
class MartDoc:
    name: str
    description: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)


def load_mart_docs(path: Path = MARTS_DOC) -> dict[str, MartDoc]:
    docs: dict[str, MartDoc] = {}
    current: MartDoc | None = None
    paragraph: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = MartDoc(line[3:].strip().strip("`"))
            docs[current.name] = current
            paragraph = []
        elif current is None:
            continue
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            name = cells[0].strip("`")
            if len(cells) >= 3 and name not in ("column", "") and not set(name) <= set("-: "):
                current.columns[name] = cells[-1]
                current.types[name] = cells[1]
        elif not current.description:
            if line.strip():
                paragraph.append(line.strip())
            elif paragraph:
                current.description = " ".join(paragraph)
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
    raise KeyError(f"{MARTS_DOC}: column {doc.name}.{column} is not documented; add it")

"""Code lists from `schemas/value_sets/*.csv` (long format), selected by name.

A code ending in `*` is a prefix. Codes are compared normalised (`pipelines.codes`) on
both sides. A site's CSV replaces the packaged CSV of the same name.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipelines import codes, resources

COLUMNS = ("value_set", "code", "code_system", "description")
FOLDER = "schemas/value_sets"


@dataclass(frozen=True)
class ValueSetEntry:
    value_set: str
    code: str
    code_system: str
    description: str

    @property
    def is_prefix(self) -> bool:
        return self.code.endswith("*")

    @property
    def normalized(self) -> str:
        """The code as compared (`pipelines.codes`), without the `*` of a prefix."""
        return codes.normalize(self.code.rstrip("*"))


def value_set_files() -> list[Path]:
    """The CSV files of the value sets this command uses (the site's where it has one)."""
    return resources.active().paths(FOLDER, ".csv")


def load_value_sets() -> tuple[ValueSetEntry, ...]:
    return read_value_sets(tuple(value_set_files()))


@cache
def read_value_sets(paths: tuple[Path, ...]) -> tuple[ValueSetEntry, ...]:
    entries: list[ValueSetEntry] = []
    for path in paths:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise resources.ResourceError(f"{path}: header must be {','.join(COLUMNS)}")
            for line, row in enumerate(reader, start=2):
                if not all(row[c] for c in COLUMNS[:3]):
                    raise resources.ResourceError(
                        f"{path}, line {line}: value_set, code and code_system are required"
                    )
                entries.append(ValueSetEntry(**{c: (row[c] or "").strip() for c in COLUMNS}))
    return tuple(entries)


def value_set(name: str) -> list[ValueSetEntry]:
    entries = [e for e in load_value_sets() if e.value_set == name]
    if not entries:
        raise KeyError(f"no value set named {name!r} in {FOLDER}")
    return entries


def value_set_names() -> list[str]:
    return sorted({e.value_set for e in load_value_sets()})


def matches(code: str, name: str) -> bool:
    """Whether one code is in a value set (small lookups; bulk matching is vectorised)."""
    norm = codes.normalize(code)
    return any(
        norm.startswith(e.normalized) if e.is_prefix else norm == e.normalized
        for e in value_set(name)
    )

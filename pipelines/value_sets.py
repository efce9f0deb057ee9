"""Code lists from `schemas/value_sets/*.csv` (long format), selected by name.

A code ending in `*` is a prefix. Codes are normalised (upper case, no dots or
spaces) on both sides before they are compared, in pandas and in SQL alike.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipelines.paths import VALUE_SETS_DIR

COLUMNS = ("value_set", "code", "code_system", "description")


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
        """The code as compared: upper case, no dots or spaces, without the `*`."""
        return normalize_code(self.code.rstrip("*"))


def normalize_code(code: str) -> str:
    return code.upper().replace(".", "").replace(" ", "").strip()


@cache
def load_value_sets(directory: Path = VALUE_SETS_DIR) -> tuple[ValueSetEntry, ...]:
    entries: list[ValueSetEntry] = []
    for path in sorted(Path(directory).glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise ValueError(f"{path}: header must be {','.join(COLUMNS)}")
            for line, row in enumerate(reader, start=2):
                if not all(row[c] for c in COLUMNS[:3]):
                    raise ValueError(
                        f"{path}, line {line}: value_set, code and code_system are required"
                    )
                entries.append(ValueSetEntry(**{c: row[c].strip() for c in COLUMNS}))
    return tuple(entries)


def value_set(name: str, directory: Path = VALUE_SETS_DIR) -> list[ValueSetEntry]:
    entries = [e for e in load_value_sets(directory) if e.value_set == name]
    if not entries:
        raise KeyError(f"no value set named {name!r} in {directory}")
    return entries


def value_set_names(directory: Path = VALUE_SETS_DIR) -> list[str]:
    return sorted({e.value_set for e in load_value_sets(directory)})


def matches(code: str, name: str) -> bool:
    """Whether one code is in a value set (small lookups; bulk matching is vectorised)."""
    norm = normalize_code(code)
    return any(
        norm.startswith(e.normalized) if e.is_prefix else norm == e.normalized
        for e in value_set(name)
    )

"""The canonical table contracts, read from `schemas/<table>.yml`.

Every layer takes column names, types and constraints from here (readers, Great
Expectations suites, DuckDB DDL, docs), so a contract changes in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

from pipelines import resources
from pipelines.sqltext import identifier

ColumnType = Literal["string", "integer", "boolean", "date"]

TABLES: tuple[str, ...] = ("intake", "referrals", "diagnoses", "patients")

# The one owner of "a column of this type is, in DuckDB and in pandas": contract columns
# and every table derived from them (scored features too, which add `double`).
DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "double": "DOUBLE",
}
PANDAS_DTYPES: dict[str, str] = {
    "string": "string",
    "integer": "Int64",
    "boolean": "boolean",
    "date": "datetime64[us]",
    "double": "float64",
}
CONTRACT_TYPES: tuple[str, ...] = ("string", "integer", "boolean", "date")
_KNOWN_KEYS = {
    "name",
    "type",
    "required",
    "unique",
    "allowed",
    "min",
    "max",
    "cap",
    "references",
    "free_text",
    "symptom",
    "not_after_load_date",
    "description",
}


class ContractError(resources.ResourceError):
    """A schema file that does not describe a valid contract."""


# A column's name is written into SQL and read from input headers: snake_case only, so a
# site's contract cannot name a column `x" VARCHAR); DROP TABLE ...`.
COLUMN_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    description: str
    required: bool = False
    unique: bool = False
    allowed: tuple[str, ...] | None = None
    min: int | None = None
    max: int | None = None
    cap: int | None = None
    references: str | None = None
    free_text: bool = False
    symptom: bool = False
    not_after_load_date: bool = False

    @property
    def pandas_dtype(self) -> str:
        return PANDAS_DTYPES[self.type]

    @property
    def duckdb_type(self) -> str:
        return DUCKDB_TYPES[self.type]


@dataclass(frozen=True)
class Contract:
    table: str
    description: str
    file_prefix: str
    columns: tuple[Column, ...]
    primary_key: str | None = None
    required_table: bool = True
    _by_name: dict[str, Column] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.columns})

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_names(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.table} has no column {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def columns_of_type(self, type_: ColumnType) -> list[str]:
        return [c.name for c in self.columns if c.type == type_]

    def pandas_dtypes(self) -> dict[str, str]:
        return {c.name: c.pandas_dtype for c in self.columns}

    def duckdb_columns(self, *, enforce_required: bool = False) -> str:
        """Column definitions for CREATE TABLE, in contract order."""
        parts = []
        for c in self.columns:
            not_null = " NOT NULL" if enforce_required and c.required else ""
            parts.append(f"{identifier(c.name)} {c.duckdb_type}{not_null}")
        return ",\n    ".join(parts)

    def create_table_sql(
        self, schema: str, *, enforce_required: bool = False, extra_columns: str = ""
    ) -> str:
        extra = f",\n    {extra_columns}" if extra_columns else ""
        return (
            f"CREATE TABLE IF NOT EXISTS {schema}.{self.table} (\n    "
            f"{self.duckdb_columns(enforce_required=enforce_required)}{extra}\n)"
        )


def _parse_column(table: str, raw: dict, path: Path) -> Column:
    if not isinstance(raw.get("name"), str) or not COLUMN_NAME.fullmatch(raw["name"]):
        raise ContractError(
            f"{path}: column name {raw.get('name')!r} must be snake_case (a-z, 0-9, _, "
            "starting with a letter); fix the file"
        )
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise ContractError(
            f"{path}: column {raw.get('name')!r} has unknown keys {sorted(unknown)}"
        )
    if raw.get("type") not in CONTRACT_TYPES:
        raise ContractError(
            f"{path}: column {raw.get('name')!r} has type {raw.get('type')!r}; "
            f"expected one of {', '.join(CONTRACT_TYPES)}"
        )
    allowed = raw.get("allowed")
    return Column(
        name=raw["name"],
        type=raw["type"],
        description=raw.get("description", ""),
        required=bool(raw.get("required", False)),
        unique=bool(raw.get("unique", False)),
        allowed=tuple(str(v) for v in allowed) if allowed else None,
        min=raw.get("min"),
        max=raw.get("max"),
        cap=raw.get("cap"),
        references=raw.get("references"),
        free_text=bool(raw.get("free_text", False)),
        symptom=bool(raw.get("symptom", False)),
        not_after_load_date=bool(raw.get("not_after_load_date", False)),
    )


def load_contract(table: str) -> Contract:
    """The contract of `table`: `schemas/<table>.yml`, the site's own if it has one."""
    return read_contract(table, resources.active().path(f"schemas/{table}.yml"))


@cache
def read_contract(table: str, path: Path) -> Contract:
    """Read one contract file into a Contract; a malformed file names itself."""
    raw = resources.read_yaml(path)
    if not isinstance(raw, dict) or raw.get("table") != table:
        raise ContractError(f"{path}: expected a mapping with `table: {table}`")
    columns = tuple(_parse_column(table, c, path) for c in raw.get("columns") or [])
    if not columns:
        raise ContractError(f"{path}: no columns")
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ContractError(f"{path}: duplicate column names")
    return Contract(
        table=table,
        description=raw.get("description", ""),
        file_prefix=raw.get("file_prefix", table),
        columns=columns,
        primary_key=raw.get("primary_key"),
        required_table=bool(raw.get("required_table", True)),
    )


def all_contracts() -> dict[str, Contract]:
    return {t: load_contract(t) for t in TABLES}

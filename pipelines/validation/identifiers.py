"""The identifier guard: nothing that names a person is ever stored.

Three measures, all driven by `schemas/identifiers.yml` and the contracts:
- a file with a direct-identifier column is rejected whole;
- free text (contract columns with `free_text: true`) is scrubbed of e-mail
  addresses, phone, SSN-like and MRN-like numbers, vectorised with Arrow's RE2;
- a value above a column's `cap` (age over 90, a HIPAA identifier) is stored as the cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines import resources
from pipelines.contracts import Contract
from pipelines.validation.outcomes import FileRejected

IDENTIFIERS_FILE = "schemas/identifiers.yml"


@dataclass(frozen=True)
class IdentifierRules:
    direct_columns: frozenset[str]
    zip_columns: frozenset[str]
    redaction: str
    patterns: dict[str, str]

    @property
    def combined_pattern(self) -> str:
        """One alternation, so each free-text column is scanned once."""
        return "|".join(f"(?:{p})" for p in self.patterns.values())


def identifier_rules() -> IdentifierRules:
    """The guard's rules: schemas/identifiers.yml, the site's own if it has one."""
    return read_identifier_rules(resources.active().path(IDENTIFIERS_FILE))


@cache
def read_identifier_rules(path: Path) -> IdentifierRules:
    raw = resources.read_yaml(path)
    try:
        return IdentifierRules(
            direct_columns=frozenset(raw["direct_identifier_columns"]),
            zip_columns=frozenset(raw["five_digit_zip_columns"]),
            redaction=raw["redaction"],
            patterns=dict(raw["free_text_patterns"]),
        )
    except (KeyError, TypeError) as exc:
        raise resources.ResourceError(f"{path}: missing or malformed key {exc}") from None


def _canonical_name(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def reject_identifier_columns(path: Path, columns: list[str]) -> None:
    """Reject the file when its header holds a direct identifier such as a name or an SSN."""
    rules = identifier_rules()
    found = [c for c in columns if _canonical_name(c) in rules.direct_columns]
    if found:
        raise FileRejected(
            "identifiers",
            f"{path}: column(s) {', '.join(found)} hold direct identifiers; the data must be "
            "de-identified — remove these columns and send the file again (nothing of it was "
            "stored)",
        )


def reject_five_digit_zip(path: Path, rows: pa.Table) -> None:
    """A five-digit ZIP code identifies a small area; a three-digit prefix is allowed."""
    rules = identifier_rules()
    for name in rows.column_names:
        if (
            _canonical_name(name) in rules.zip_columns
            and pc.any(pc.match_substring_regex(rows[name], r"\d{5}")).as_py()
        ):
            raise FileRejected(
                "identifiers",
                f"{path}: column {name} holds five-digit ZIP codes, a direct identifier; keep "
                "only the first three digits and send the file again (nothing of it was stored)",
            )


@dataclass
class Scrubbed:
    rows: pa.Table
    redacted: int  # identifier matches replaced in free text
    capped: int  # values above a column's cap stored as the cap


def scrub(contract: Contract, rows: pa.Table) -> Scrubbed:
    """Redact identifiers in free text and cap values, before anything is stored."""
    rules = identifier_rules()
    pattern = rules.combined_pattern
    redacted = capped = 0
    columns = {name: rows[name] for name in rows.column_names}
    for column in contract.columns:
        if column.name not in columns:
            continue
        values = columns[column.name]
        if column.free_text:
            found = int(pc.sum(pc.count_substring_regex(values, pattern)).as_py() or 0)
            if found:  # a second pass of the patterns only where there is something to redact
                columns[column.name] = pc.replace_substring_regex(values, pattern, rules.redaction)
            redacted += found
        if column.cap is not None:
            number = pc.cast(
                pc.if_else(pc.match_substring_regex(values, r"^\+?\d{1,9}$"), values, None),
                pa.int64(),
            )
            over = pc.fill_null(pc.greater(number, column.cap), False)
            capped += int(np.count_nonzero(over.to_numpy(zero_copy_only=False)))
            columns[column.name] = pc.if_else(over, str(column.cap), values)
    return Scrubbed(pa.table(columns), redacted, capped)

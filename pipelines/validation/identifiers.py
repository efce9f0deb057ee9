"""The identifier guard: nothing that names a person is ever stored.

Driven by `schemas/identifiers.yml` and the contracts, before anything of a file
is stored (raw, quarantine, staging) or shown (Data Docs, the run's summary):
- a file with a direct-identifier column (name, SSN, ...) is rejected whole, and
  any other column outside the contract is not stored;
- every text value of every contract column is NFKC-normalised (full-width digits
  are digits, `＠` is `@`) and searched for the patterns of identifiers (e-mail
  addresses, phone, SSN-like and record numbers, dates of birth, street addresses,
  names after a title or a person word). In free text (`free_text: true`) each
  match is redacted and the row kept; in any other column (an id, a code, a
  category) the value is redacted whole and the row quarantined (`identifier`);
- an id or code that a spreadsheet would run as a formula is quarantined (`formula`);
- a value above a column's `cap` (age over 90, a HIPAA identifier), in any numeric
  form (`104`, `104.0`, `1.04e2`), is stored as the cap.
Vectorised with Arrow's RE2; a column whose suite tells its values apart (a
category, a number, a date) is searched once per distinct value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines import resources
from pipelines.contracts import Column, Contract
from pipelines.outputs import FORMULA_START, NUMBER_TEXT
from pipelines.validation import outcomes
from pipelines.validation.outcomes import FileRejected

IDENTIFIERS_FILE = "schemas/identifiers.yml"
# Column names are reported, not stored: a long one is cut to this many characters.
NAME_SHOWN = 60


@dataclass(frozen=True)
class IdentifierRules:
    direct_columns: frozenset[str]
    zip_columns: frozenset[str]
    redaction: str
    patterns: dict[str, str]
    # pattern name -> the `table.column`s it is not searched in
    not_searched_in: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def combined_pattern(self) -> str:
        """Every pattern in one alternation, so a value is scanned once."""
        return "|".join(f"(?:{p})" for p in self.patterns.values())

    def pattern_for(self, table: str, column: str) -> str:
        """The alternation of the patterns searched in `table.column`."""
        where = f"{table}.{column}"
        return "|".join(
            f"(?:{p})"
            for name, p in self.patterns.items()
            if where not in self.not_searched_in.get(name, ())
        )


def identifier_rules() -> IdentifierRules:
    """The guard's rules: schemas/identifiers.yml, the site's own if it has one."""
    return read_identifier_rules(resources.active().path(IDENTIFIERS_FILE))


@cache
def read_identifier_rules(path: Path) -> IdentifierRules:
    raw = resources.read_yaml(path)
    try:
        rules = IdentifierRules(
            direct_columns=frozenset(raw["direct_identifier_columns"]),
            zip_columns=frozenset(raw["five_digit_zip_columns"]),
            redaction=raw["redaction"],
            patterns={str(k): str(v) for k, v in raw["patterns"].items()},
            not_searched_in={
                str(k): frozenset(v) for k, v in (raw.get("not_searched_in") or {}).items()
            },
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise resources.ResourceError(f"{path}: missing or malformed key {exc}") from None
    unknown = sorted(set(rules.not_searched_in) - set(rules.patterns))
    if unknown:
        raise resources.ResourceError(
            f"{path}: not_searched_in names no pattern {', '.join(unknown)}; use a name of patterns"
        )
    for name, pattern in rules.patterns.items():
        try:
            pc.match_substring_regex(pa.array([""]), pattern)
        except pa.ArrowInvalid as exc:
            raise resources.ResourceError(
                f"{path}: pattern {name} is not an RE2 regular expression ({exc})"
            ) from None
    return rules


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


# ---------------------------------------------------------------- text


def normalised(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """The values in Unicode NFKC form; ASCII text (most columns) is returned as it is."""
    if pc.all(pc.string_is_ascii(values)).as_py() is not False:
        return values
    return pc.utf8_normalize(values, form="NFKC")


def redacted_text(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Text with every identifier replaced (a line that could not be parsed, say)."""
    rules = identifier_rules()
    return pc.replace_substring_regex(normalised(values), rules.combined_pattern, rules.redaction)


def reportable_names(names: list[str]) -> list[str]:
    """Column names as a summary may show them: an identifier in one is redacted.

    Names are searched without regard to case: readers lower-case them, which would
    hide `Mr Jones` from the patterns that look for a capital.
    """
    rules = identifier_rules()
    pattern = "(?i)" + rules.combined_pattern
    text = normalised(pa.array(names, pa.string()))
    found = pc.fill_null(pc.match_substring_regex(text, pattern), False).to_pylist()
    shown = []
    for name, is_identifier in zip(text.to_pylist(), found, strict=True):
        if is_identifier:
            shown.append(rules.redaction)
        else:
            shown.append(name if len(name) <= NAME_SHOWN else name[: NAME_SHOWN - 1] + "…")
    return shown


def _matches(values: pa.ChunkedArray, pattern: str, by_value: bool) -> pa.ChunkedArray | None:
    """Where `values` match `pattern` (NULL counts as no match); None when nowhere.

    `by_value`: few distinct values (categories, numbers, dates), searched once each.
    """
    if by_value:
        distinct = pc.unique(values)
        hits = distinct.filter(pc.fill_null(pc.match_substring_regex(distinct, pattern), False))
        return pc.is_in(values, value_set=hits) if len(hits) else None
    found = pc.fill_null(pc.match_substring_regex(values, pattern), False)
    return found if pc.any(found).as_py() else None


def formula_check(column: Column) -> bool:
    """Whether a value of the column starting like a spreadsheet formula is quarantined:
    ids and codes, which no one writes that way. Free text is neutralised on output
    instead (`-ve SLR` is a finding), and categories and numbers have their own rules."""
    return column.type == "string" and column.allowed is None and not column.free_text


# ---------------------------------------------------------------- caps


def cap_values(column: Column, values: pa.ChunkedArray) -> tuple[pa.ChunkedArray, int]:
    """Values above the column's cap, written as any number (`104`, `104.0`, `1.04e2`),
    as the cap; and how many there were."""
    numeric = pc.fill_null(pc.match_substring_regex(values, NUMBER_TEXT), False)
    number = pc.cast(pc.if_else(numeric, values, None), pa.float64())
    over = pc.fill_null(pc.greater(number, column.cap), False)
    n_over = int(np.count_nonzero(over.to_numpy(zero_copy_only=False)))
    return (pc.if_else(over, str(column.cap), values) if n_over else values), n_over


def capped_sql(column: Column, text: str) -> str:
    """`cap_values` in DuckDB: the text expression `text` of `column`, capped."""
    from pipelines.sqltext import literal

    trimmed = f"trim({text})"
    return (
        f"CASE WHEN regexp_matches({trimmed}, {literal(NUMBER_TEXT)}) "
        f"AND TRY_CAST({trimmed} AS DOUBLE) > {int(column.cap)} "
        f"THEN {literal(str(column.cap))} ELSE {text} END"
    )


# ---------------------------------------------------------------- a chunk of rows


@dataclass
class Flagged:
    """Rows of a chunk that one rule of the guard quarantines."""

    column: str
    rule: str
    source_rows: pa.Array
    values: pa.Array  # what the quarantine shows: never an identifier


@dataclass
class Scrubbed:
    rows: pa.Table  # the contract's columns present in the chunk, and `source_row`
    redacted: int  # identifier matches replaced in free text
    capped: int  # values above a column's cap stored as the cap
    flagged: list[Flagged] = field(default_factory=list)


def scrub(contract: Contract, rows: pa.Table) -> Scrubbed:
    """The chunk as it may be stored: contract columns only, normalised, identifiers
    redacted, caps applied; the rows to quarantine (`identifier`, `formula`) named."""
    rules = identifier_rules()
    from pipelines.validation.suites import checked_by_value

    redacted = capped = 0
    flagged: list[Flagged] = []
    source_rows = rows["source_row"]
    columns: dict[str, pa.ChunkedArray] = {}
    for column in contract.columns:
        if column.name not in rows.column_names:
            continue
        values = normalised(pc.cast(rows[column.name], pa.string()))
        pattern = rules.pattern_for(contract.table, column.name)
        if column.free_text:
            found = int(pc.sum(pc.count_substring_regex(values, pattern)).as_py() or 0)
            if found:  # a second pass of the patterns only where there is something to redact
                values = pc.replace_substring_regex(values, pattern, rules.redaction)
            redacted += found
        elif (hit := _matches(values, pattern, checked_by_value(column))) is not None:
            values = pc.if_else(hit, rules.redaction, values)
            flagged.append(
                Flagged(
                    column.name,
                    outcomes.IDENTIFIER,
                    pc.filter(source_rows, hit),
                    pa.repeat(pa.scalar(rules.redaction), int(pc.sum(hit).as_py())),
                )
            )
        if formula_check(column):
            starts = _matches(values, FORMULA_START, by_value=False)
            if starts is not None:
                number = pc.fill_null(pc.match_substring_regex(values, NUMBER_TEXT), False)
                formula = pc.and_(starts, pc.invert(number))
                if pc.any(formula).as_py():
                    flagged.append(
                        Flagged(
                            column.name,
                            outcomes.FORMULA,
                            pc.filter(source_rows, formula),
                            pc.filter(values, formula),
                        )
                    )
        if column.cap is not None:
            values, n_capped = cap_values(column, values)
            capped += n_capped
        columns[column.name] = values
    columns["source_row"] = source_rows
    return Scrubbed(pa.table(columns), redacted, capped, flagged)

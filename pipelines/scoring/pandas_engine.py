"""The pandas engine: the rules evaluated column by column, no loop over rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from pipelines.contracts import load_contract
from pipelines.scoring import history, matches
from pipelines.scoring.duckdb_engine import SOURCE
from pipelines.scoring.output import cast_output
from pipelines.scoring.rules import ID_COLUMNS, INPUT_COLUMNS, RuleSet

if TYPE_CHECKING:
    import duckdb


def inputs(intake: pd.DataFrame, rules: RuleSet) -> pd.DataFrame:
    """Typed intake columns in history order, plus the text and code match columns.

    Contract columns the frame lacks are NULL, as in the DuckDB engine.
    """
    dtypes = load_contract("intake").pandas_dtypes()
    frame = pd.DataFrame(
        {
            c: intake[c] if c in intake.columns else pd.Series(pd.NA, index=intake.index)
            for c in dtypes
        },
        index=intake.index,
    ).astype(dtypes)
    frame = frame.take(history.history_order(frame)).reset_index(drop=True)
    text = matches.complaint_matches_pandas(frame["chief_complaint"], rules)
    codes = matches.code_matches_pandas(frame["dx_codes"], rules)
    return pd.concat([frame, text, codes], axis=1)


def effective(frame: pd.DataFrame, rules: RuleSet) -> pd.DataFrame:
    env = rules.env()
    env.frame = frame
    out = frame[list(ID_COLUMNS + INPUT_COLUMNS) + matches.carried(rules)].copy()
    for feature in rules.effective:
        out[feature.name] = feature.expr.pandas(env)
    return out


def with_history(
    frame: pd.DataFrame, rules: RuleSet, diagnoses: pd.DataFrame | None = None
) -> pd.DataFrame:
    patient, date, bp = frame["patient_id"], frame["encounter_date"], frame["back_pain"]
    start = history.group_start(patient)
    previous = history.previous_back_pain_row(start, bp)
    out = frame.copy()
    out["days_since_previous"] = history.days_since_previous(date, previous)
    out["previous_pain_score"] = history.previous_pain_score(frame["pain_score"], previous)
    out["n_back_pain_window"] = history.n_back_pain_window(start, date, bp, rules.window_days)
    out["episode_days"] = history.episode_days(
        start, date, bp, out["days_since_previous"], rules.washout_days
    )
    env = rules.env()
    env.frame = frame
    for e in rules.ever:
        found = history.ever_so_far(start, e.here.pandas(env))
        if e.icd10_pattern is not None:
            found |= history.diagnosed_by(patient, date, diagnoses, e.icd10_pattern, e.snomed_codes)
        out[e.name] = pd.Series(found, index=frame.index, dtype="boolean")
    return out


def features(frame: pd.DataFrame, rules: RuleSet) -> pd.DataFrame:
    env = rules.env()
    env.frame = frame
    out = frame.copy()
    for feature in rules.features:
        out[feature.name] = feature.expr.pandas(env)
    return out


def scored(frame: pd.DataFrame, rules: RuleSet) -> pd.DataFrame:
    env = rules.env()
    env.frame = frame
    out = frame.copy()
    out["tier"] = rules.tier.pandas(env)
    out["score"] = rules.score.pandas(env)
    out["completeness"] = rules.completeness.pandas(env).astype("float64") / len(
        rules.symptom_names
    )
    out["rules_version"] = rules.version
    return out


def score_pandas(
    intake: pd.DataFrame, rules: RuleSet, diagnoses: pd.DataFrame | None = None
) -> pd.DataFrame:
    """features.presentation_flags for an intake frame, ordered by patient and visit;
    the history also reads `diagnoses` (rows of the diagnoses contract) when given."""
    frame = inputs(intake, rules)
    frame = with_history(effective(frame, rules), rules, diagnoses)
    frame = scored(features(frame, rules), rules)
    return cast_output(frame[rules.output_columns], rules)


def intake_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """staging.intake as a frame through Arrow: strings stay Arrow-backed, never Python objects.

    (`.df()` builds a Python object per string, several seconds per million rows.)
    """
    import pyarrow as pa

    dtypes = {
        pa.string(): pd.StringDtype("pyarrow"),
        pa.large_string(): pd.StringDtype("pyarrow"),
        pa.bool_(): pd.BooleanDtype(),
        pa.int32(): pd.Int64Dtype(),
        pa.int64(): pd.Int64Dtype(),
    }
    columns = ", ".join(load_contract("intake").names)
    table = con.sql(f"SELECT {columns} FROM {SOURCE}").to_arrow_table()
    return table.to_pandas(types_mapper=dtypes.get, date_as_object=False)


def diagnoses_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """staging.diagnoses as a frame (the columns the history reads)."""
    from pipelines.scoring.history import DIAGNOSES

    table = con.sql(
        f"SELECT patient_id, diagnosis_date, code, code_system FROM {DIAGNOSES}"
    ).to_arrow_table()
    return table.to_pandas(types_mapper=pd.ArrowDtype, date_as_object=False)

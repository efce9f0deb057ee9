"""History helpers: what the patient's earlier presentations say about this one.

Presentations are ordered by (encounter_date, encounter_id) within a patient, as
the cohort definition orders them; only rows at or before the current one in
that order count, so a later visit never changes an earlier result. The pandas
functions work on positions in a frame sorted in that order (a patient's rows
are one run starting at `group_start`); `history_sql` is the same logic as
DuckDB window functions. The helper columns are listed in
schemas/red_flags.yml (`history:`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pipelines import codes
from pipelines.sqltext import literal

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

ORDER = ["patient_id", "encounter_date", "encounter_id"]


def history_order(frame: pd.DataFrame) -> np.ndarray:
    """Positions that put the frame's rows in ORDER, ties kept in their input order.

    Arrow's multi-key sort_indices is stable and puts NULLs last, as
    DataFrame.sort_values(kind="stable") does, in half the time on 1M rows (pandas
    factorizes each string key first).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = pa.table({k: pa.array(frame[k].array) for k in ORDER})
    return pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in ORDER]).to_numpy()


def _day_number(encounter_date: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 as int64 (dates are whole days)."""
    import numpy as np

    return encounter_date.to_numpy(dtype="datetime64[D]").astype(np.int64)


def group_start(patient_id: pd.Series) -> np.ndarray:
    """Position of the first row of each row's patient, in a frame sorted by patient.

    A patient's rows are one run, so cumulative maxima of positions stop at the
    run's start: a position from before it means "none for this patient".
    """
    import numpy as np
    import pandas as pd

    ids = pd.factorize(patient_id, use_na_sentinel=False)[0]
    first = np.ones(len(ids), dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    return np.maximum.accumulate(np.where(first, np.arange(len(ids)), 0))


def _last_position(flag: np.ndarray) -> np.ndarray:
    """Position of the last row at or before each row where flag is true (-1 if none)."""
    import numpy as np

    return np.maximum.accumulate(np.where(flag, np.arange(len(flag)), -1))


def previous_back_pain_row(start: np.ndarray, back_pain: pd.Series) -> pd.Series:
    """Position of the patient's last back-pain presentation before this row (NA if none)."""
    import numpy as np
    import pandas as pd

    last = _last_position(back_pain.to_numpy(dtype=bool))
    previous = np.concatenate([[-1], last[:-1]]) if len(last) else last
    result = pd.Series(previous, index=back_pain.index, dtype="Int64")
    return result.where(previous >= start)


def days_since_previous(encounter_date: pd.Series, previous_row: pd.Series) -> pd.Series:
    import numpy as np
    import pandas as pd

    days = _day_number(encounter_date)
    known = previous_row.notna().to_numpy()
    rows = previous_row.fillna(0).to_numpy(dtype=np.int64)
    result = pd.Series(days - days[rows], index=encounter_date.index, dtype="Int64")
    return result.where(known)


def previous_pain_score(pain_score: pd.Series, previous_row: pd.Series) -> pd.Series:
    import numpy as np
    import pandas as pd

    known = previous_row.notna().to_numpy()
    rows = previous_row.fillna(0).to_numpy(dtype=np.int64)
    values = pain_score.astype("Int64").array[rows]
    result = pd.Series(values, index=pain_score.index, dtype="Int64")
    return result.where(known)


def n_back_pain_window(
    start: np.ndarray, encounter_date: pd.Series, back_pain: pd.Series, window_days: int
) -> pd.Series:
    """Back-pain presentations with 0 <= this date - their date <= window, up to this row.

    Cumulative count of back-pain rows up to this one, minus the count up to the
    last row older than the window (found by binary search on (patient, day)).
    """
    import numpy as np
    import pandas as pd

    days = _day_number(encounter_date)
    group = np.cumsum(start == np.arange(len(start))).astype(np.int64)
    span = (days.max() - days.min() + window_days + 2) if len(days) else 1
    key = group * span + (days - (days.min() if len(days) else 0))
    bp = back_pain.to_numpy(dtype=bool).astype(np.int64)
    total = np.cumsum(bp)
    before_patient = total[start] - bp[start]
    first_in_window = np.searchsorted(key, key - window_days, side="left")
    before = np.where(first_in_window > start, total[np.maximum(first_in_window - 1, 0)], 0)
    return pd.Series(
        total - np.maximum(before, before_patient), index=back_pain.index, dtype="Int64"
    )


def episode_days(
    start: np.ndarray,
    encounter_date: pd.Series,
    back_pain: pd.Series,
    days_since_previous: pd.Series,
    washout_days: int,
) -> pd.Series:
    """Days since the index presentation of the current back-pain episode.

    An index is a back-pain presentation with no earlier back-pain presentation in
    the washout before it; NA for a presentation that is not back pain.
    """
    import numpy as np
    import pandas as pd

    bp = back_pain.to_numpy(dtype=bool)
    recent = (days_since_previous <= washout_days).fillna(False).to_numpy(dtype=bool)
    index_row = _last_position(bp & ~recent)
    days = _day_number(encounter_date)
    known = bp & (index_row >= start)
    result = pd.Series(days - days[np.maximum(index_row, 0)], index=back_pain.index, dtype="Int64")
    return result.where(known)


# The columns the history windows read; `row_key` joins their results back.
ROW_KEY = "row_key"
HISTORY_INPUTS = ["patient_id", "encounter_date", "encounter_id", "back_pain", "pain_score"]


DIAGNOSES = "staging.diagnoses"


def diagnosis_match_sql(icd10_pattern: str, snomed_codes: tuple[str, ...]) -> str:
    """A diagnoses row's code is in the value set (ICD-10-CM) or maps into it (SNOMED)."""
    code = codes.normalize_sql("code")
    snomed = (
        f"code_system = {literal('SNOMED')} "
        f"AND {code} IN ({', '.join(literal(c) for c in snomed_codes)})"
        if snomed_codes
        else "false"
    )
    return (
        f"((code_system = {literal('ICD10CM')} "
        f"AND regexp_matches({code}, {literal(icd10_pattern)})) "
        f"OR ({snomed}))"
    )


def history_sql(
    source: str,
    window_days: int,
    washout_days: int,
    ever: Sequence[tuple[str, str]] = (),
    diagnosed: Sequence[tuple[str, str]] | None = None,
) -> str:
    """The same helpers as window functions over `source` (a CTE name); returns CTEs.

    The windows sort only the few columns they read (each window ordering is a
    sort of its input), and `episodes` holds `row_key` and the helper columns, to
    be joined back to `source` on `row_key`. `ever` gives (name, SQL over
    `source`) of each ever-helper; `diagnosed` (name, match over a diagnoses row)
    of those that also read DIAGNOSES, None when there is no diagnoses table.
    """
    order = "PARTITION BY patient_id ORDER BY encounter_date, encounter_id"
    narrow = ", ".join([ROW_KEY, *HISTORY_INPUTS])
    heres = "".join(f", {expr} AS {name}_here" for name, expr in ever)
    carried = "".join(f", {name}" for name, _ in ever)
    so_far = "".join(
        f",\n        coalesce(bool_or({name}_here) OVER so_far, false) AS {name}"
        for name, _ in ever
    )
    by_diagnosis = dict(diagnosed or ())
    ever_columns = "".join(
        f",\n        {name} OR coalesce(first_{name} <= encounter_date, false) AS {name}"
        if name in by_diagnosis
        else f",\n        {name}"
        for name, _ in ever
    )
    diagnoses_cte = ""
    diagnoses_join = ""
    if by_diagnosis:
        firsts = ",\n        ".join(
            f"min(CASE WHEN {match} THEN diagnosis_date END) AS first_{name}"
            for name, match in by_diagnosis.items()
        )
        diagnoses_cte = f"""diagnosed AS (
    -- Each patient's first diagnosis of each value set the history reads.
    SELECT
        patient_id,
        {firsts}
    FROM {DIAGNOSES}
    GROUP BY patient_id
),
"""
        diagnoses_join = " LEFT JOIN diagnosed USING (patient_id)"
    return f"""previous AS (
    -- (Each ever-helper is TRUE once its condition held here or at an earlier
    -- presentation of the patient.)
    -- Each patient's presentations in order (encounter_date, encounter_id): a
    -- same-day visit with a larger encounter_id is later. The previous back-pain
    -- presentation is the last one before this row in that order (its date and
    -- pain_score ride along in a struct). Back-pain presentations with
    -- 0 <= days before this one <= {window_days} are counted up to and including this one.
    SELECT
        {narrow},
        last_value(CASE WHEN back_pain THEN {{'encounter_date': encounter_date,
            'pain_score': pain_score}} END IGNORE NULLS) OVER earlier AS previous_back_pain,
        sum(CASE WHEN back_pain THEN 1 ELSE 0 END) OVER so_far
            - coalesce(sum(CASE WHEN back_pain THEN 1 ELSE 0 END) OVER older_than_window, 0)
            AS n_back_pain_window{so_far}
    FROM (SELECT {narrow}{heres} FROM {source})
    WINDOW
        earlier AS ({order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
        so_far AS ({order} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
        older_than_window AS (
            -- (a whole number of days off a DATE keeps the order key the date
            -- itself, so all three windows share one sort)
            PARTITION BY patient_id ORDER BY encounter_date
            RANGE BETWEEN UNBOUNDED PRECEDING AND {window_days + 1} PRECEDING
        )
),
history AS (
    SELECT
        {narrow},
        encounter_date - previous_back_pain.encounter_date AS days_since_previous,
        previous_back_pain.pain_score AS previous_pain_score,
        n_back_pain_window{carried}
    FROM previous
),
{diagnoses_cte}
episodes AS (
    -- Days since the index of the current back-pain episode: an index is a
    -- back-pain presentation with no earlier one in the {washout_days} days before it.
    SELECT
        {ROW_KEY},
        days_since_previous,
        previous_pain_score,
        n_back_pain_window,
        CASE WHEN back_pain THEN encounter_date - max(CASE
            WHEN back_pain AND NOT coalesce(days_since_previous <= {washout_days}, false)
            THEN encounter_date END
        ) OVER ({order} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
        END AS episode_days{ever_columns}
    FROM history{diagnoses_join}
)"""


def ever_so_far(start: np.ndarray, here: pd.Series) -> np.ndarray:
    """Whether `here` was TRUE at this row or an earlier row of the same patient."""
    return _last_position(here.to_numpy(dtype=bool, na_value=False)) >= start


def diagnosed_by(
    patient_id: pd.Series,
    encounter_date: pd.Series,
    diagnoses: pd.DataFrame | None,
    icd10_pattern: str,
    snomed_codes: tuple[str, ...],
) -> np.ndarray:
    """Whether the patient has a diagnoses row of the value set dated on or before this date.

    ICD-10-CM codes are matched by the value set's pattern, SNOMED codes by the
    crosswalk codes that map into it (both compared normalised, `pipelines.codes`).
    """
    import numpy as np
    import pandas as pd

    if diagnoses is None or diagnoses.empty:
        return np.zeros(len(patient_id), dtype=bool)
    code = codes.normalize_pandas(diagnoses["code"].astype("string").fillna(""))
    system = diagnoses["code_system"].astype("string")
    hit = ((system == "ICD10CM") & code.str.contains(icd10_pattern, regex=True)) | (
        (system == "SNOMED") & code.isin(snomed_codes)
    )
    hit = hit.to_numpy(dtype=bool, na_value=False)
    on_or_before = np.zeros(len(patient_id), dtype=bool)
    if not hit.any():
        return on_or_before
    dates = diagnoses["diagnosis_date"].to_numpy(dtype="datetime64[D]")[hit]
    patients = diagnoses["patient_id"].astype("string").to_numpy()[hit]
    first = pd.Series(dates).groupby(patients).min()
    where = first.index.get_indexer(patient_id.astype("string").to_numpy())
    known = where >= 0
    first_days = first.to_numpy(dtype="datetime64[D]")
    on_or_before[known] = (
        first_days[where[known]] <= (encounter_date.to_numpy(dtype="datetime64[D]")[known])
    )
    return on_or_before

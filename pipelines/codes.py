"""How a clinical code is compared: the one normalisation, in Python, Arrow and SQL.

Codes are compared upper case, without dots or white space (`m54.5 ` and `M545` are
one code). A character outside ASCII becomes `?`, which no code list holds, so a code
written with a look-alike letter never matches by accident. Value sets, the scoring
engines (dx_codes), the referral classification and the source adapters all compare
codes normalised this way.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pipelines.sqltext import literal

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

DROP = r"[.\t\n\f\r ]"  # dots and ASCII white space (the same set in RE2 and Python)
NON_ASCII = r"[^\x00-\x7F]"


def normalize(code: str) -> str:
    return re.sub(NON_ASCII, "?", re.sub(DROP, "", code)).upper()


def normalize_arrow(codes: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The same for an Arrow string array (NULL stays NULL)."""
    import pyarrow.compute as pc

    dropped = pc.replace_substring_regex(codes, DROP, "")
    return pc.utf8_upper(pc.replace_substring_regex(dropped, NON_ASCII, "?"))


def normalize_sql(expression: str) -> str:
    """The same in DuckDB SQL, for a VARCHAR expression (NULL stays NULL)."""
    dropped = f"regexp_replace({expression}, {literal(DROP)}, '', 'g')"
    return f"upper(regexp_replace({dropped}, {literal(NON_ASCII)}, '?', 'g'))"


def normalize_pandas(codes: pd.Series) -> pd.Series:
    """The same for a pandas string Series (NULL stays NULL)."""
    dropped = codes.str.replace(DROP, "", regex=True)
    return dropped.str.replace(NON_ASCII, "?", regex=True).str.upper()

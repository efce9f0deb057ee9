"""Where the project's data files live, so that no module guesses a path of its own."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCHEMAS_DIR = Path(os.environ.get("REDFLAGS_SCHEMAS", PROJECT_ROOT / "schemas"))
VALUE_SETS_DIR = SCHEMAS_DIR / "value_sets"
SQL_DIR = PROJECT_ROOT / "sql"
SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"
DEFAULT_WAREHOUSE = Path("data") / "warehouse.duckdb"

"""Helpers shared by the tests: hand-made inputs, harnesses, and where the checkout is."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = ROOT / "data" / "sample"
FIXTURES = ROOT / "tests" / "fixtures"
SCHEMAS_DIR = ROOT / "schemas"
SQL_DIR = ROOT / "sql"
RULES_PATH = SCHEMAS_DIR / "red_flags.yml"

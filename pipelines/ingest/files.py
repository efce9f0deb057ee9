"""Canonical input files: `intake*`, `referrals*`, `diagnoses*` in one directory.

Which file is which table; reading them is `readers.py`, loading them `load.py`.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.contracts import TABLES, load_contract
from pipelines.errors import UserError

SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".parquet", ".jsonl", ".jsonl.gz", ".ndjson")


def file_kind(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return {"csv.gz": "csv", "jsonl.gz": "jsonl", "ndjson": "jsonl"}.get(
                suffix.lstrip("."), suffix.lstrip(".")
            )
    return None


def discover(input_dir: str | Path) -> dict[str, list[Path]]:
    """Input files by table, matched by name prefix (`intake*` -> intake), sorted by name."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise UserError(
            f"{input_dir}: not a directory; pass --input DIR with the canonical files", exit_code=2
        )
    found: dict[str, list[Path]] = {t: [] for t in TABLES}
    for path in sorted(input_dir.iterdir()):
        if not path.is_file() or file_kind(path) is None:
            continue
        for table in TABLES:
            if path.name.lower().startswith(load_contract(table).file_prefix):
                found[table].append(path)
                break
    return found

"""Canonical input files: `intake*`, `referrals*`, `diagnoses*`, `patients*` in one directory.

Which file is which table, and which files are not read and why (every other file is
listed, never skipped without a word); reading them is `readers.py`, loading them
`load.py`. A symbolic link is followed only to a file inside the input directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipelines.contracts import TABLES, load_contract
from pipelines.errors import UserError

SUFFIXES: tuple[str, ...] = (
    ".csv",
    ".csv.gz",
    ".tsv",
    ".tsv.gz",
    ".parquet",
    ".jsonl",
    ".jsonl.gz",
    ".ndjson",
)
KINDS: dict[str, str] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "csv",
    ".tsv.gz": "csv",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
    ".ndjson": "jsonl",
}


def file_kind(path: Path) -> str | None:
    name = path.name.lower()
    return next((KINDS[suffix] for suffix in SUFFIXES if name.endswith(suffix)), None)


@dataclass
class Survey:
    """An input directory: its files by table, and every other entry with why it is not read."""

    found: dict[str, list[Path]]
    skipped: list[str] = field(default_factory=list)  # "name: why", in name order


def _why_not_read(path: Path, input_dir: Path) -> str | None:
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(input_dir):
            return (
                f"refused: a symbolic link to {target}, outside the input directory; copy "
                "the file into the input directory instead"
            )
    if path.is_dir():
        return "a directory; files in subdirectories are not read"
    if not path.is_file():
        return "not a regular file"
    if file_kind(path) is None:
        return "not a .csv, .tsv, .csv.gz, .parquet or .jsonl file"
    prefixes = [load_contract(t).file_prefix for t in TABLES]
    if not path.name.lower().startswith(tuple(prefixes)):
        return f"its name starts with none of {', '.join(prefixes)}"
    return None


def survey(input_dir: str | Path) -> Survey:
    """Input files by table, matched by name prefix (`intake*` -> intake), sorted by name,
    and every other entry of the directory with the reason it is not read."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise UserError(
            f"{input_dir}: not a directory; pass --input DIR with the canonical files", exit_code=2
        )
    root = input_dir.resolve()
    result = Survey({t: [] for t in TABLES})
    for path in sorted(input_dir.iterdir()):
        why = _why_not_read(path, root)
        if why is not None:
            result.skipped.append(f"{path.name}: {why}")
            continue
        for table in TABLES:
            if path.name.lower().startswith(load_contract(table).file_prefix):
                result.found[table].append(path)
                break
    return result


def discover(input_dir: str | Path) -> dict[str, list[Path]]:
    """Input files by table, matched by name prefix (`intake*` -> intake), sorted by name."""
    return survey(input_dir).found

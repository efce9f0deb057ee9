"""The source kinds `redflags run --source` accepts, and where converted files go.

`canonical` input is read as it is; every other kind has an adapter module with
`check_input(input_dir)` (fails fast, before Prefect starts) and
`convert(input_dir, out_dir) -> AdapterReport`, which writes canonical Parquet files
that the normal ingest then reads.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

CANONICAL = "canonical"
ADAPTERS: dict[str, str] = {
    "omop": "pipelines.sources.omop",
    "fhir": "pipelines.sources.fhir",
}
SOURCE_KINDS: tuple[str, ...] = (CANONICAL, *ADAPTERS)


def adapter(kind: str) -> ModuleType:
    """The adapter module of a source kind (imported on demand: DuckDB loads only then)."""
    return importlib.import_module(ADAPTERS[kind])


def converted_dir(warehouse: str | Path, kind: str) -> Path:
    """`<warehouse dir>/converted/<kind>/`: beside the warehouse, replaced on every run."""
    return Path(warehouse).resolve().parent / "converted" / kind

"""numpy and pandas, imported on first use.

The scoring modules hold both engines side by side, but `redflags score
--engine duckdb` (and the warehouse's DuckDB scoring) never touches a frame:
importing pandas cost 0.8 CPU s of a 1M-row score. Modules that use pandas
at run time take `np` and `pd` from here; the real module is imported the first
time an attribute is read, and from then on each read is one dict lookup.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for a module until an attribute is read, then forwards to it."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _module(self) -> ModuleType:
        return importlib.import_module(self._name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._module(), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


np = LazyModule("numpy")
pd = LazyModule("pandas")

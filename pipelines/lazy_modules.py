"""Modules imported on first use.

numpy and pandas: the scoring modules hold both engines side by side, but `redflags
score --engine duckdb` (and the warehouse's DuckDB scoring) never touches a frame:
importing pandas cost 0.8 CPU s of a 1M-row score. Modules that use pandas at run time
take `np` and `pd` from here; the real module is imported the first time an attribute
is read.

A module that a library imports but we never call gets the same stand-in in
`sys.modules` (`defer_import`), where the library's own `import` finds it.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any


class DeferredModule(ModuleType):
    """Stands for a module until an attribute is read, then imports it and forwards.

    Put in `sys.modules` (`defer_import`), it is what `import name` and `from package
    import name` find, and they go no further: its `__spec__` is None, so the import
    system sees nothing left to initialise. The first attribute read takes it out of
    `sys.modules` and imports the real module in its place; later reads through it
    forward to the real one.
    """

    def __getattr__(self, attribute: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attribute)

    def __repr__(self) -> str:
        return f"<deferred module {self.__name__!r}>"


np = DeferredModule("numpy")
pd = DeferredModule("pandas")


def defer_import(name: str) -> None:
    """Make later imports of `name` cheap: its code runs when an attribute is first read.

    For a module that a library imports at the top but uses only inside functions we
    never call. Nothing changes for code that does use it, except when it loads. Does
    nothing if `name` is imported already.
    """
    if name not in sys.modules:
        sys.modules[name] = DeferredModule(name)

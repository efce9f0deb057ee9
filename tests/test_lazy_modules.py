"""Modules imported on first use: deferred imports load once, when first read, and only then."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.lazy_modules import DeferredModule, defer_import


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package whose module `heavy` records each time its code runs."""
    root = tmp_path / "deferpkg"
    root.mkdir()
    (root / "__init__.py").write_text("RUNS = []\n", encoding="utf-8")
    (root / "heavy.py").write_text(
        "import deferpkg\ndeferpkg.RUNS.append('heavy')\nANSWER = 42\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "deferpkg"
    for name in [n for n in sys.modules if n == "deferpkg" or n.startswith("deferpkg.")]:
        del sys.modules[name]


def test_a_deferred_module_runs_when_first_read_and_once(package: str):
    import deferpkg

    defer_import("deferpkg.heavy")
    # Both spellings of its import find the stand-in, and run nothing.
    import deferpkg.heavy as heavy_too
    from deferpkg import heavy

    assert heavy is heavy_too
    assert isinstance(heavy, DeferredModule)
    assert deferpkg.RUNS == []
    assert heavy.ANSWER == 42  # the first read runs the module
    assert heavy.ANSWER == 42
    assert deferpkg.RUNS == ["heavy"]
    real = sys.modules["deferpkg.heavy"]
    assert not isinstance(real, DeferredModule) and real.ANSWER == 42


def test_an_imported_module_is_left_as_it_is(package: str):
    import deferpkg.heavy

    defer_import("deferpkg.heavy")
    assert sys.modules["deferpkg.heavy"] is deferpkg.heavy
    assert deferpkg.RUNS == ["heavy"]


def printed_by(code: str) -> list[str]:
    """What `code` prints in a fresh process, word by word."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout.split()


def test_great_expectations_is_imported_without_scipy_stats():
    # In a fresh process: the suites are built and run (the ingest tests check their
    # outcomes), and scipy.stats, which no suite of ours uses, is never loaded.
    code = (
        "import sys\n"
        "from pipelines.validation.checkpoint import Validator\n"
        "import great_expectations.expectations.core.expect_column_kl_divergence_to_be_less_than"
        " as kl\n"
        "print(type(sys.modules['scipy.stats']).__name__)\n"
        "print(round(float(kl.stats.entropy([0.5, 0.5], [0.9, 0.1])), 6))\n"
        "print(type(sys.modules['scipy.stats']).__name__)\n"
    )
    # 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1) = 0.510826: scipy works once it is used.
    assert printed_by(code) == ["DeferredModule", "0.510826", "module"]


def test_the_scoring_modules_import_without_pandas_until_a_frame_is_made():
    code = (
        "import sys\n"
        "import pipelines.scoring.duckdb_engine, pipelines.scoring.history\n"
        "import pipelines.scoring.matches, pipelines.scoring.predicates\n"
        "print('pandas' in sys.modules)\n"
        "from pipelines.lazy_modules import pd\n"
        "print(pd.DataFrame({'a': [1, 2, 3]})['a'].sum(), 'pandas' in sys.modules)\n"
    )
    assert printed_by(code) == ["False", "6", "True"]

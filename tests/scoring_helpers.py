"""Shared by the scoring tests: build intake frames from the readable fixture."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from pipelines.contracts import load_contract

FIXTURE = Path(__file__).parent / "fixtures" / "scoring_cases.yml"


def load_cases() -> tuple[dict, list[dict]]:
    raw = yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))
    return raw["defaults"], raw["cases"]


def intake_frame(rows: list[dict], defaults: dict | None = None) -> pd.DataFrame:
    """A typed intake frame: every contract column, NULL where a row gives nothing."""
    contract = load_contract("intake")
    filled = [{**(defaults or {}), **row} for row in rows]
    frame = pd.DataFrame({c: [r.get(c) for r in filled] for c in contract.names})
    frame["encounter_date"] = pd.to_datetime(frame["encounter_date"])
    return frame.astype(contract.pandas_dtypes())

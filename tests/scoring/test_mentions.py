"""`redflags mentions` (pipelines/scoring/mentions.py): the text engine on annotated notes.

The gold set (tests/fixtures/negation_gold.csv) is synthetic back-pain triage text
written from the patterns of the negation literature, each row labelled by a
clinician's reading of the phrase in the text, not by the engine.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from pipelines.errors import UserError
from pipelines.scoring.mentions import NegationScore, format_result, run_mentions
from tests.support import FIXTURES

GOLD = FIXTURES / "negation_gold.csv"
ENGINES = ["duckdb", "pandas"]

# Where the engine and the reader part, and why (the rules read literally):
KNOWN_DISAGREEMENTS = {
    # "never had" is a pre-negation cue; the reader sees back pain now, unlike before.
    ("Never had back pain like this before.", "back pain"): "negated",
    # The 12-word window: weight loss is the 17th word after "denies".
    (
        "Denies fever, chills, rigors, night sweats, headache, neck stiffness, chest pain, "
        "palpitations, cough, shortness of breath, abdominal pain or weight loss.",
        "weight loss",
    ): "affirmed",
    # "daughter" reaches the patient's own leg weakness (no termination term between).
    ("Daughter is a nurse, noticed his leg weakness.", "leg weakness"): "other_person",
    # "denied" is both a pre- and a post-negation cue.
    ("Haemoptysis denied, cough present.", "cough"): "negated",
    # "likely" qualifies the cause, "unclear if" the intent, not the mention.
    ("Likely mechanical back pain.", "back pain"): "hypothetical",
    ("Unclear if weight loss is intentional.", "weight loss"): "hypothetical",
    # "has" is a relative word and ends the pre-negation of "no longer".
    ("No longer has sciatica.", "sciatica"): "affirmed",
    # "afebrile" is not the word "febrile".
    ("Afebrile.", "febrile"): "absent",
    # Another person's cues read forward only.
    ("Lung cancer in her father.", "lung cancer"): "affirmed",
}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_gold_set_is_large_and_balanced():
    rows = _rows(GOLD)
    share = pd.Series([r["gold"] for r in rows]).value_counts(normalize=True)
    assert len(rows) >= 200
    assert 0.35 <= share["affirmed"] <= 0.45
    assert 0.30 <= share["negated"] <= 0.40
    assert {"hypothetical", "other_person", "absent"} <= set(share.index)


@pytest.mark.parametrize("engine", ENGINES)
def test_negation_f1_on_the_gold_set(engine: str, tmp_path: Path):
    out = tmp_path / "statuses.csv"
    result = run_mentions(GOLD, out, engine)
    print("\n".join(format_result(result)))
    assert result.negation is not None and result.negation.f1 is not None
    assert result.negation.f1 >= 0.93
    wrong = {(r["text"], r["phrase"]): r["status"] for r in _rows(out) if r["status"] != r["gold"]}
    assert wrong == KNOWN_DISAGREEMENTS
    # Negated by the engine, not by the reader: 2 (never had, denied); the reverse: 3
    # (the window, no longer has, afebrile).
    n = result.negation
    assert (n.fp, n.fn, n.tp + n.fn, result.rows) == (2, 3, 110, 315)


def test_both_engines_write_the_same_file(tmp_path: Path):
    for engine in ENGINES:
        run_mentions(GOLD, tmp_path / f"{engine}.parquet", engine)
    by_duckdb = pd.read_parquet(tmp_path / "duckdb.parquet")
    by_pandas = pd.read_parquet(tmp_path / "pandas.parquet")
    pd.testing.assert_frame_equal(by_duckdb, by_pandas)
    assert list(by_duckdb.columns) == ["text", "phrase", "gold", "status"]


def _write(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("engine", ENGINES)
def test_output_keeps_the_input_columns_and_order(engine: str, tmp_path: Path):
    source = _write(
        tmp_path,
        "id,text,phrase,note\n"
        '7,"=HYPERLINK(1) no back pain",back pain,x\n'
        "3,,fever,\n"
        '5,"Night pain: no. Weight loss: no.",weight loss,y\n',
    )
    result = run_mentions(source, tmp_path / "out.csv", engine)
    rows = _rows(tmp_path / "out.csv")
    assert [r["id"] for r in rows] == ["7", "3", "5"]
    assert [r["status"] for r in rows] == ["negated", "absent", "negated"]
    assert rows[0]["text"] == "'=HYPERLINK(1) no back pain"  # no formula in a CSV
    assert list(rows[0]) == ["id", "text", "phrase", "note", "status"]
    assert result.negation is None and result.agree is None
    assert result.counts == {
        "affirmed": 0, "negated": 2, "other_person": 0, "hypothetical": 0, "absent": 1,
    }  # fmt: skip
    assert len(format_result(result)) == 2


def test_negation_score_and_printed_lines(tmp_path: Path):
    """Gold negated twice (one found), affirmed once, absent once: TP 1, FN 1, TN 2."""
    source = _write(
        tmp_path,
        "text,phrase,gold\n"
        "No fever.,fever,negated\n"
        "Afebrile.,febrile,negated\n"
        "Back pain.,back pain,Affirmed\n"
        "Knee pain.,back pain, absent\n",
    )
    result = run_mentions(source, tmp_path / "out.parquet", "duckdb")
    assert result.negation == NegationScore(tp=1, fp=0, fn=1, tn=2)
    assert (result.negation.precision, result.negation.recall) == (1.0, 0.5)
    assert result.negation.f1 == pytest.approx(2 / 3)
    assert result.agree == 3
    lines = format_result(result)
    assert lines[1] == "statuses: affirmed 1, negated 1, other_person 0, hypothetical 0, absent 2"
    assert lines[2] == "agree with gold: 3 of 4 rows (75.0%)"
    assert lines[3] == (
        "negation against gold: precision 1.000, recall 0.500, F1 0.667 (TP 1, FP 0, FN 1, TN 2)"
    )


def test_scores_without_a_positive_say_so():
    score = NegationScore(tp=0, fp=0, fn=0, tn=4)
    assert (score.precision, score.recall, score.f1) == (None, None, None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text,gold\nx,negated\n", r"in\.csv: missing column\(s\) phrase; the input needs"),
        ("text,phrase,status\nx,y,z\n", r"in\.csv: has a column status, which the output adds"),
        (
            "text,phrase,gold\nno fever,fever,negated\nfever,fever,present\n",
            r"in\.csv, row 2, column gold: 'present' is not one of affirmed, negated, "
            r"other_person, hypothetical, absent",
        ),
        ("text,phrase,gold\nno fever,fever,\n", r"in\.csv, row 1, column gold: empty is not"),
    ],
)
def test_bad_input_is_one_line_naming_file_row_and_column(tmp_path: Path, content, message):
    with pytest.raises(UserError, match=message):
        run_mentions(_write(tmp_path, content), tmp_path / "out.csv", "pandas")


def test_bad_paths_are_usage_errors(tmp_path: Path):
    with pytest.raises(UserError, match="must end in .csv or .parquet") as wrong_kind:
        run_mentions(_write(tmp_path, "text,phrase\n"), tmp_path / "out.txt", "duckdb")
    with pytest.raises(UserError, match="no such file") as missing:
        run_mentions(tmp_path / "none.csv", tmp_path / "out.csv", "duckdb")
    with pytest.raises(UserError, match="--engine 'spark'"):
        run_mentions(GOLD, tmp_path / "out.csv", "spark")
    assert wrong_kind.value.exit_code == missing.value.exit_code == 2


def test_the_command_writes_statuses_and_prints_negation_scores(tmp_path: Path):
    """`redflags mentions` end to end: the settings' engine, the file, the printed F1."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    notes = tmp_path / "notes.csv"
    notes.write_text(
        "text,phrase,gold\n"
        '"Denies fever, chills or weight loss.",weight loss,negated\n'
        "Night pain: no. Weight loss: yes,night pain,negated\n"
        "Wakes at night with back pain,back pain,affirmed\n",
        encoding="utf-8",
    )
    out = tmp_path / "statuses.csv"
    result = CliRunner().invoke(
        app, ["mentions", str(notes), "--out", str(out)], env={"REDFLAGS_ENGINE": "pandas"}
    )
    assert result.exit_code == 0, result.output
    assert "with the pandas engine" in result.output
    # Two negated rows both found, the affirmed one not: precision = recall = F1 = 1.
    assert "precision 1.000, recall 1.000, F1 1.000 (TP 2, FP 0, FN 0, TN 1)" in result.output
    with out.open(encoding="utf-8", newline="") as fh:
        statuses = [row["status"] for row in csv.DictReader(fh)]
    assert statuses == ["negated", "negated", "affirmed"]

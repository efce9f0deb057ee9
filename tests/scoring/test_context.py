"""The ConText-style text engine: one rule per case, both engines, NULLs included.

Every expected status is worked out by hand from the clinical rules ("Text") and the
packaged lexicon (schemas/context_lexicon.csv): which cue reaches which mention,
counting words, within one sentence. The property test at the end checks that the
two engines agree on random sentences built from the same pieces.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import resources
from pipelines.scoring.context import (
    LEXICON_FILE,
    LexiconError,
    load_lexicon,
    read_lexicon,
    statuses_duckdb,
    statuses_pandas,
)
from tests.support import SCHEMAS_DIR

ENGINES = {"pandas": statuses_pandas, "duckdb": statuses_duckdb}
FILLER = list("abcdefghijklm")

CASES = [
    # --- sentences: . ; ! ? and line breaks end a cue's scope; commas do not
    ("list across commas", "denies fever, chills, night sweats or weight loss", "weight loss",
     "negated"),
    ("post-negation, first", "Night pain: no. Weight loss: no.", "night pain", "negated"),
    ("post-negation, second", "Night pain: no. Weight loss: no.", "weight loss", "negated"),
    ("full stop ends scope", "No fever. Back pain since Monday.", "back pain", "affirmed"),
    ("semicolon ends scope", "no fever; back pain", "back pain", "affirmed"),
    ("exclamation ends scope", "no fever! back pain", "back pain", "affirmed"),
    ("line break ends scope", "no fever\nback pain", "back pain", "affirmed"),
    ("CR LF ends scope", "no fever\r\nback pain", "back pain", "affirmed"),
    ("attached ? ends scope", "no fever? back pain", "back pain", "affirmed"),
    # A decimal point is no sentence end: fever is the 7th word after "no"
    # (weight, loss, of, 25, kg, or, fever).
    ("decimal point", "no weight loss of 2.5 kg or fever", "fever", "negated"),
    # --- pre-negation: the mention's first word among the 12 words after the cue
    ("12th word after no", "no " + " ".join(FILLER[:11]) + " back pain", "back pain", "negated"),
    ("13th word after no", "no " + " ".join(FILLER[:12]) + " back pain", "back pain", "affirmed"),
    ("negative for", "Negative for fever.", "fever", "negated"),
    ("no evidence of", "No evidence of cord compression", "cord compression", "negated"),
    ("has not had beats has", "has not had any weight loss", "weight loss", "negated"),
    ("doesn't have", "Doesn't have back pain", "back pain", "negated"),
    ("doesnt have, typed", "doesnt have back pain", "back pain", "negated"),
    ("nil", "nil haemoptysis", "haemoptysis", "negated"),
    ("ruled out before", "ruled out fracture", "fracture", "negated"),
    ("cue after mention only looks forward", "back pain, no fever", "back pain", "affirmed"),
    # --- post-negation: the mention's last word among the 3 words before the cue
    ("absent", "Weight loss absent", "weight loss", "negated"),
    ("dash nil", "haemoptysis - nil", "haemoptysis", "negated"),
    ("denied after", "Fever denied", "fever", "negated"),
    ("resolved", "Chest pain resolved", "chest pain", "negated"),
    ("was ruled out", "fracture was ruled out", "fracture", "negated"),
    ("is negative", "Cough is negative", "cough", "negated"),
    ("colon form closes", "Night pain: no, weight loss: yes", "night pain", "negated"),
    ("colon form reads nothing after", "Night pain: no, weight loss: yes", "weight loss",
     "affirmed"),
    ("colon form before words", "Red flags: no night pain", "night pain", "negated"),
    ("dash form before words", "Back pain - no radiation", "back pain", "affirmed"),
    ("two words between", "weight loss this month: no", "weight loss", "negated"),
    ("three words between", "weight loss over past month: no", "weight loss", "affirmed"),
    ("post cue not across a sentence", "Back pain. Absent ankle reflexes.", "back pain",
     "affirmed"),
    ("contrast term stops a post cue", "back pain but cough resolved", "back pain", "affirmed"),
    # A comma ends a cue's reach back (a choice where the rules are open: "the mention
    # just before" it), not its reach forward ("list across commas" above).
    ("post cue not across a comma", "back pain, fever absent", "back pain", "affirmed"),
    ("post cue before the comma", "back pain, fever absent", "fever", "negated"),
    ("colon form not across a comma", "back pain, night pain: no", "back pain", "affirmed"),
    ("hypothetical after not across a comma", "back pain, metastases not excluded",
     "back pain", "affirmed"),
    ("hypothetical after before the comma", "back pain, metastases not excluded",
     "metastases", "hypothetical"),
    # Read literally, a cue written after a comma negates nothing.
    ("post cue right after a comma", "Weight loss, absent", "weight loss", "affirmed"),
    # --- pseudo-negations are matched first; their words are no cue
    ("no increase", "no increase in back pain", "back pain", "affirmed"),
    ("no change", "No change in night pain", "night pain", "affirmed"),
    ("not only", "not only back pain but also leg weakness", "back pain", "affirmed"),
    ("without difficulty", "walks without difficulty, no leg weakness", "leg weakness",
     "negated"),
    # --- longest match first; words inside a mention are never cues
    ("not ruled out", "malignancy not ruled out", "malignancy", "hypothetical"),
    ("not been ruled out", "Metastases have not been ruled out", "metastases",
     "hypothetical"),
    ("cannot rule out", "cannot rule out malignancy", "malignancy", "hypothetical"),
    ("not certain whether", "not certain whether fracture", "fracture", "hypothetical"),
    ("rule out", "rule out fracture", "fracture", "hypothetical"),
    ("cue words inside the mention", "not relieved by rest", "not relieved by rest",
     "affirmed"),
    # --- termination: contrast ends every cue, relative words only pre-negation
    ("but, reports", "no fever but reports night pain", "night pain", "affirmed"),
    ("however", "denies fever, however back pain worse", "back pain", "affirmed"),
    ("relative has ends negation", "no cough, has back pain", "back pain", "affirmed"),
    ("with ongoing", "no fever with ongoing back pain", "back pain", "affirmed"),
    ("relative words keep another person", "father, who had lung cancer", "lung cancer",
     "other_person"),
    # possible -> fracture (1) , which (2) has (3) caused (4) back (5): within 12.
    ("relative words keep hypothetical", "possible fracture, which has caused back pain",
     "back pain", "hypothetical"),
    ("patient ends another person", "Mother had breast cancer, patient has back pain",
     "back pain", "affirmed"),
    # --- hypothetical, before and after
    ("? against the next word", "?mets", "mets", "hypothetical"),
    ("? standing alone", "? mets", "mets", "hypothetical"),
    ("? against the mention's end", "mets?", "mets", "hypothetical"),
    ("? against another word", "back pain worse?", "back pain", "affirmed"),
    ("? alone reads forward only", "back pain ?", "back pain", "affirmed"),
    ("query", "query cauda equina", "cauda equina", "hypothetical"),
    ("return if", "Return if leg weakness develops", "leg weakness", "hypothetical"),
    ("suspected after", "cauda equina suspected", "cauda equina", "hypothetical"),
    ("not excluded", "malignancy not excluded", "malignancy", "hypothetical"),
    ("r/o", "r/o fracture", "fracture", "hypothetical"),
    # --- another person, and precedence: other person > negation > hypothetical
    ("family history", "family history of bowel cancer", "bowel cancer", "other_person"),
    ("other person over negation", "no family history of cancer", "cancer", "other_person"),
    ("negation over hypothetical", "possible fracture was ruled out", "fracture", "negated"),
    # --- the row: affirmed > negated > other_person > hypothetical > absent
    ("one mention affirmed", "No back pain last week. Back pain today.", "back pain",
     "affirmed"),
    ("negated over hypothetical", "?mets on x-ray. CT: no mets.", "mets", "negated"),
    ("other over hypothetical", "Mother had lung cancer. Possible lung cancer.", "lung cancer",
     "other_person"),
    ("no mention", "no fever", "back pain", "absent"),
    ("phrase inside a word", "backpain", "back", "absent"),
    # --- phrases are their words
    ("hyphen joins words", "reports back ache", "back-ache", "affirmed"),
    ("case and punctuation", "BACK PAIN!", "Back pain", "affirmed"),
]  # fmt: skip

NULL_CASES = [
    ("NULL text", None, "back pain"),
    ("empty text", "", "back pain"),
    ("NULL phrase", "back pain", None),
    ("empty phrase", "back pain", ""),
    ("phrase without a word", "back pain?", "?!"),
]


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        {"text": [r[1] for r in rows], "phrase": [r[2] for r in rows]}, dtype="string[pyarrow]"
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_every_rule_by_hand(engine: str):
    frame = _frame(CASES)
    got = ENGINES[engine](frame["text"], frame["phrase"]).tolist()
    wrong = [(c[0], c[3], g) for c, g in zip(CASES, got, strict=True) if c[3] != g]
    assert wrong == []


@pytest.mark.parametrize("engine", ENGINES)
def test_null_text_or_phrase_is_absent(engine: str):
    frame = _frame(NULL_CASES)
    statuses = ENGINES[engine](frame["text"], frame["phrase"])
    assert statuses.tolist() == ["absent"] * len(NULL_CASES)
    assert statuses.notna().all()


@pytest.mark.parametrize("engine", ENGINES)
def test_the_rows_keep_their_index(engine: str):
    frame = _frame(CASES[:3]).set_axis([10, 5, 7])
    statuses = ENGINES[engine](frame["text"], frame["phrase"])
    assert statuses.index.tolist() == [10, 5, 7]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_feature_phrase_list(engine: str):
    """One list for every row: the longest phrase first, and a post-negation reaches
    back to the mention just before it only."""
    text = pd.Series(
        [
            "no low back pain",  # one mention, "low back pain" (3 words): negated
            "night pain, weight loss: no",  # night pain affirmed, weight loss negated
            "weight loss: no",
            "low back pain",
        ],
        dtype="string[pyarrow]",
    )
    phrases = ["back pain", "low back pain", "night pain", "weight loss"]
    statuses = ENGINES[engine](text, phrases)
    assert statuses.tolist() == ["negated", "affirmed", "negated", "affirmed"]


@pytest.mark.parametrize("engine", ENGINES)
def test_no_rows(engine: str):
    empty = pd.Series([], dtype="string[pyarrow]")
    assert ENGINES[engine](empty, empty).tolist() == []


# --------------------------------------------------------------- the lexicon as data
def _lexicon(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "context_lexicon.csv"
    path.write_text("kind,phrase,scope_words,source\n" + "\n".join(lines) + "\n", "utf-8")
    return path


def test_the_packaged_lexicon_holds_every_kind():
    kinds = {
        line.split(",")[0]
        for line in (SCHEMAS_DIR / "context_lexicon.csv").read_text("utf-8").splitlines()[1:]
    }
    assert kinds == {
        "sentence_end", "pre_negation", "post_negation", "pseudo_negation", "termination",
        "relative_termination", "hypothetical_before", "hypothetical_after", "other_person",
    }  # fmt: skip
    assert load_lexicon().path == resources.packaged_root() / LEXICON_FILE


def test_a_site_lexicon_replaces_the_packaged_one(tmp_path: Path):
    """A site that reads "nil" as no cue: "nil haemoptysis" is affirmed there."""
    site = tmp_path / "site"
    (site / "schemas").mkdir(parents=True)
    packaged = (SCHEMAS_DIR / "context_lexicon.csv").read_text("utf-8").splitlines()
    own = [line for line in packaged if not line.startswith("pre_negation,nil,")]
    (site / LEXICON_FILE).write_text("\n".join(own) + "\n", "utf-8")
    try:
        resources.use_site(site)
        lexicon = load_lexicon()
        assert lexicon.path == site / LEXICON_FILE
        text = pd.Series(["nil haemoptysis"], dtype="string[pyarrow]")
        for engine in ENGINES.values():
            assert engine(text, ["haemoptysis"], lexicon).tolist() == ["affirmed"]
    finally:
        resources.use_site(None)


def test_scope_words_come_from_the_lexicon(tmp_path: Path):
    path = _lexicon(tmp_path, ["sentence_end,.,,", "pre_negation,no,2,"])
    lexicon = read_lexicon(path)
    text = pd.Series(["no a fever", "no a b fever"], dtype="string[pyarrow]")
    for engine in ENGINES.values():
        assert engine(text, ["fever"], lexicon).tolist() == ["negated", "affirmed"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["negation,no,12,"], "line 2, column kind: 'negation' is not one of"),
        (["pre_negation,no,,"], "line 2, column scope_words: a pre_negation cue needs"),
        (["termination,but,3,"], "line 2, column scope_words: leave it empty for termination"),
        (["pre_negation,no,12,", "pre_negation,No,12,"], "line 3: pre_negation 'No' is listed"),
        (["sentence_end,ab,,"], "line 2, column phrase: a sentence end is one punctuation"),
        (["pre_negation,no.,12,"], "line 2, column phrase: 'no.' has no word, or holds"),
        (["pre_negation,,12,"], "line 2, column phrase: empty"),
    ],
)
def test_a_bad_lexicon_names_file_line_and_column(tmp_path: Path, lines, message):
    path = _lexicon(tmp_path, ["sentence_end,.,,", *lines])
    # The first entry above is line 2; the cases count from the line after it.
    message = message.replace("line 3", "line 4").replace("line 2", "line 3")
    with pytest.raises(LexiconError, match=str(path).replace(".", r"\.") + ", " + message):
        read_lexicon(path)


def test_a_bad_header_is_one_line(tmp_path: Path):
    path = tmp_path / "context_lexicon.csv"
    path.write_text("kind,phrase\npre_negation,no\n", "utf-8")
    with pytest.raises(LexiconError, match="header must be kind,phrase,scope_words,source"):
        read_lexicon(path)


# --------------------------------------------------------------- parity, random sentences
PIECES = [
    "no", "not", "denies", "denied", "without", "negative for", "no evidence of", "never had",
    "has not had", "doesn't have", ": no", "- nil", "absent", "resolved", "was ruled out",
    "not present", "no increase", "no change", "not only", "but", "however", "reports",
    "patient", "c/o", "which", "who", "has", "had", "with ongoing", "rule out", "r/o",
    "query", "possible", "if", "suspected", "not ruled out", "not excluded", "cannot rule out",
    "?", "family history", "mother", "father", "brother", ",", ",", ".", ";", "!", "\n", "-",
    "2.5", "kg", "the", "pain", "and", "worse", "back pain", "low back pain", "weight loss",
    "night pain", "fever", "cancer", "mets", "not relieved by rest",
]  # fmt: skip
TARGETS = ["back pain", "weight loss", "fever", "mets", "not relieved by rest", "pain", None]


@st.composite
def rows(draw) -> list[tuple[str | None, str | None]]:
    out = []
    for _ in range(draw(st.integers(1, 12))):
        pieces = draw(st.lists(st.sampled_from(PIECES), max_size=30))
        # A ? written against the end of the previous piece, sometimes.
        glue = draw(st.lists(st.booleans(), min_size=len(pieces), max_size=len(pieces)))
        text = "".join(
            ("?" if g and p != "?" else "") + (" " if i else "") + p
            for i, (p, g) in enumerate(zip(pieces, glue, strict=True))
        )
        out.append((draw(st.none() | st.just(text)), draw(st.sampled_from(TARGETS))))
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows())
def test_engines_agree_on_random_sentences(batch):
    text = pd.Series([t for t, _ in batch], dtype="string[pyarrow]")
    phrase = pd.Series([p for _, p in batch], dtype="string[pyarrow]")
    assert statuses_pandas(text, phrase).tolist() == statuses_duckdb(text, phrase).tolist()

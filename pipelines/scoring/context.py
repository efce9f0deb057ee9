"""ConText-style reading of a phrase in free text: affirmed, negated, hypothetical,
another person's, or absent.

The cue lists are data (`schemas/context_lexicon.csv`, a site's own where it has one);
the rules are those of the clinical logic ("Text"). Both engines run the same steps,
with the same regular expressions (RE2: DuckDB's regexp functions, pyarrow's regex
kernels), and then the same arithmetic over the tokens, so they agree row for row:

1. **Normalise** the text (`Lexicon.normalise_before_lower`, lower case,
   `Lexicon.normalise_after_lower`): ASCII letters and digits make words; apostrophes
   are dropped ("doesn't" is "doesnt"); a `.` between digits is a decimal point;
   a `?` written against the end of a word becomes the token `^` (then a sentence
   end); the sentence ends become the token `.`; `?` standing alone or against the
   next word, `,` and `:` become tokens of their own; a `-` between two words joins
   nothing (a space) and any other `-` is a token; anything else is a space. The
   result is tokens separated by single spaces.
2. **Mark the mentions** of the phrase (longest phrase first, at word boundaries):
   each becomes one token `M<words>`. Nothing inside a mention is read as a cue.
3. **Mark the pseudo-negations** (longest first), each as `P<words>`: their words
   count as words but are no cue.
4. **Mark the cues and termination terms**, longest first; among cues of one length,
   in the order of `CUE_ORDER`. Each becomes `C<class>`, a class being the cues
   read alike (same kinds, scopes and word count; a phrase listed under two kinds,
   like "denied", is both). A post-negation written with `:` or `-` ("X: no") is
   one only where a sentence end, a comma or the end of the text follows it; in
   "Red flags: no night pain" its words are read on their own ("no" negates forward).
5. **Read each mention** from the token positions, counting words (a mention or a
   cue counts its words; `.`, `,`, `:`, `-`, `?` and `^` count none):
   - a cue before the mention (pre-negation, hypothetical, another person) reaches
     it when the mention's first word is among the `scope_words` words after the
     cue, in the same sentence, with no termination term between (a relative word
     ends only a pre-negation's scope);
   - a cue after it (post-negation, hypothetical after) reaches it when the
     mention's last word is among the `scope_words` words before the cue, in the
     same sentence, with no other mention, no comma and no contrast termination
     between;
   - another person wins over negation, negation over hypothetical; a mention
     reached by none is affirmed.
6. **The row's status**: affirmed when any mention is affirmed, else negated when
   any is negated, else other_person when any is another person's, else
   hypothetical when any is hypothetical, else absent (no mention, a NULL or empty
   text, or a NULL phrase or one without a word).

Only rows that mention the phrase go through steps 3 to 5.

A comma ends a cue's reach back but not its reach forward. The clinical rules say a
post-negation negates "the mention just before" it; each phrase list is read on its
own, so without this "absent" in "back pain, fever absent" would reach back over
"fever" (another list's mention, unseen by the back-pain list) and negate back pain.
Where the rules leave it open, the comma is taken as the end of the item a cue after
it belongs to, as clinicians write lists ("Night pain: no, weight loss: no"); a cue
before its mentions still reaches across commas ("denies fever, chills, night sweats
or weight loss" negates all four).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines import resources
from pipelines.sqltext import literal

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pandas as pd
    import pyarrow as pa

LEXICON_FILE = "schemas/context_lexicon.csv"
COLUMNS = ("kind", "phrase", "scope_words", "source")

# The kinds of entry. Cues of the *_before kinds (and other_person) look forward,
# post_negation and hypothetical_after look back; each needs its scope_words.
SENTENCE_END = "sentence_end"
PRE_NEGATION = "pre_negation"
POST_NEGATION = "post_negation"
PSEUDO_NEGATION = "pseudo_negation"
TERMINATION = "termination"
RELATIVE_TERMINATION = "relative_termination"
HYPOTHETICAL_BEFORE = "hypothetical_before"
HYPOTHETICAL_AFTER = "hypothetical_after"
OTHER_PERSON = "other_person"
SCOPED_KINDS = (PRE_NEGATION, POST_NEGATION, HYPOTHETICAL_BEFORE, HYPOTHETICAL_AFTER, OTHER_PERSON)
# Among cues of one length (in tokens), the order they are marked in: where two
# overlap ("is negative for": post-negation "is negative", pre-negation
# "negative for"), the earlier kind takes the words.
CUE_ORDER = (*SCOPED_KINDS, TERMINATION, RELATIVE_TERMINATION)
KINDS = (SENTENCE_END, PSEUDO_NEGATION, *CUE_ORDER)

AFFIRMED = "affirmed"
NEGATED = "negated"
HYPOTHETICAL = "hypothetical"
OTHER = OTHER_PERSON  # another person's mention has the kind's name as its status
ABSENT = "absent"
# A row's status is the first of these that one of its mentions has.
STATUSES = (AFFIRMED, NEGATED, OTHER, HYPOTHETICAL, ABSENT)
# A text's mention flags: one bit per status that at least one of its mentions has
# (scoring reads more than the row's status: a clinician's hypothetical mention of
# cancer counts even where another mention is another person's).
FLAG_BITS = {AFFIRMED: 1, NEGATED: 2, OTHER: 4, HYPOTHETICAL: 8}

# Tokens of the normalised text besides words.
END_TOKEN = "."
QUESTION_TOKEN = "?"  # a ? standing alone or written against the next word
QUESTION_AFTER_TOKEN = "^"  # a ? written against the end of a word
COMMA_TOKEN = ","  # ends a cue's reach back, not its reach forward
LINE_BREAK = "\\n"  # how the lexicon writes a line break (CR or LF)
WORD = "[a-z0-9]+"
# A whole token that begins with a letter or digit (a word, or a number with a decimal
# point), with the space or text start before it kept as group 1; and the one word
# the DuckDB reading writes for each (`reading_sql`).
WORD_TOKEN = "(^| )[a-z0-9][^ ]*"
PLAIN_WORD = "w"
# A run of plain words (one token of the reading), else any other token.
RUN_OR_TOKEN = f"{PLAIN_WORD}(?: {PLAIN_WORD})*|[^ ]+"
# Mark tokens (upper case never survives normalisation): a mention, a
# pseudo-negation, a cue class, each followed by a number.
MENTION, PSEUDO, CUE = "M", "P", "C"
# What must follow a closing post-negation (kept, as the group the mark re-emits).
CLOSING = f"( [{re.escape(END_TOKEN)},]|$)"


class LexiconError(resources.ResourceError):
    """A lexicon file that cannot be used: one line naming the file, line and column."""


@dataclass(frozen=True)
class CueClass:
    """Cues marked by one pass and read alike: their kinds' scopes, words and endings."""

    phrases: tuple[str, ...]  # normalised, tokens separated by single spaces
    words: int
    scopes: tuple[tuple[str, int], ...]  # (kind, scope_words) of the scoped kinds
    ends_all: bool  # a contrast termination: ends every cue's scope
    ends_pre_negation: bool  # a relative word: ends only a pre-negation's scope
    # A post-negation written "X: no" or "X - no" is one only where a sentence end, a
    # comma or the end of the text follows it ("Night pain: no, weight loss: yes");
    # elsewhere ("Red flags: no night pain") its words are read on their own, the
    # "no" negating forward.
    closing: bool = False

    @property
    def pattern(self) -> str:
        pattern = phrases_pattern(self.phrases)
        return pattern + CLOSING if self.closing else pattern

    def scope(self, kind: str) -> int:
        """The cue's scope in words for `kind` (0: not a cue of that kind)."""
        return dict(self.scopes).get(kind, 0)


@dataclass(frozen=True)
class Lexicon:
    """The cue lists of one lexicon file, compiled into the steps both engines run."""

    path: Path
    normalise_before_lower: tuple[tuple[str, str], ...]
    normalise_after_lower: tuple[tuple[str, str], ...]
    pseudo_passes: tuple[tuple[str, str], ...]  # (pattern, token), longest first
    classes: tuple[CueClass, ...]  # class i is marked C<i>
    # The tokens of every pseudo-negation, cue and termination term.
    cue_tokens: tuple[tuple[str, ...], ...] = ()

    @property
    def cue_passes(self) -> tuple[tuple[str, str], ...]:
        """(pattern, token) of each cue class, in marking order (longest first)."""
        order = sorted(
            range(len(self.classes)),
            key=lambda i: (-_token_count(self.classes[i]), _kind_rank(self.classes[i]), i),
        )
        return tuple(
            (self.classes[i].pattern, f"{CUE}{i}" + (r"\1" if self.classes[i].closing else ""))
            for i in order
        )

    @property
    def mark_passes(self) -> tuple[tuple[str, str], ...]:
        """Pseudo-negations first, then the cues (steps 3 and 4)."""
        return self.pseudo_passes + self.cue_passes

    def normalise(self, text: str) -> str:
        """One text normalised in Python, as the engines normalise theirs (phrases use it)."""
        for pattern, replacement in self.normalise_before_lower:
            text = re.sub(pattern, replacement, text, flags=re.ASCII)
        text = text.lower()
        for pattern, replacement in self.normalise_after_lower:
            text = re.sub(pattern, replacement, text, flags=re.ASCII)
        return text.strip(" ")

    def marks_after_cues(self, phrases: Sequence[str]) -> bool:
        """Whether the phrases' mentions can be marked after the cues, on a text whose
        cues are marked once for every phrase list.

        True when no phrase can overlap a pseudo-negation, cue or termination term in
        any text: both are runs of whole tokens, so they overlap only where one's
        tokens continue into the other's, equal wherever they share a position. Then
        marking one first changes nothing the other matches, and the result is that of
        step 2 before steps 3 and 4. A list like rest_pain ("not relieved by rest") is
        marked first, as the steps are written.
        """
        words = [self.normalise(p).split(" ") for p in phrases]
        return not any(_can_overlap(w, c) for w in words for c in self.cue_tokens)

    def mention_passes(self, phrases: Sequence[str]) -> tuple[tuple[str, str], ...]:
        """(pattern, token) that mark the mentions of `phrases`, longest phrase first.

        A phrase is its words (punctuation in it is ignored); one without a word
        marks nothing.
        """
        by_words: dict[int, set[str]] = {}
        for phrase in phrases:
            words = [t for t in self.normalise(phrase).split(" ") if re.fullmatch(WORD, t)]
            if words:
                by_words.setdefault(len(words), set()).add(" ".join(words))
        return tuple(
            (phrases_pattern(tuple(by_words[n])), f"{MENTION}{n}")
            for n in sorted(by_words, reverse=True)
        )


def keywords(phrases: Sequence[str], lexicon: Lexicon) -> list[str]:
    """Literal words one of which every mention of the phrases contains (a cheap
    filter before the patterns): the longest word of each phrase, without a word that
    holds another of them."""
    words = set()
    for phrase in phrases:
        tokens = [t for t in lexicon.normalise(phrase).split(" ") if re.fullmatch(WORD, t)]
        if tokens:
            words.add(max(tokens, key=len))
    return sorted(w for w in words if not any(o != w and o in w for o in words))


def _can_overlap(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether token runs `a` and `b` can share at least one position in some text."""
    for shift in range(-len(b) + 1, len(a)):
        pairs = [(a[i], b[i - shift]) for i in range(max(0, shift), min(len(a), shift + len(b)))]
        if all(x == y for x, y in pairs):
            return True
    return False


def _token_count(cue_class: CueClass) -> int:
    return len(cue_class.phrases[0].split(" "))


def _kind_rank(cue_class: CueClass) -> int:
    kinds = [k for k, _ in cue_class.scopes]
    kinds += [TERMINATION] if cue_class.ends_all else []
    kinds += [RELATIVE_TERMINATION] if cue_class.ends_pre_negation else []
    return min(CUE_ORDER.index(k) for k in kinds)


def phrases_pattern(phrases: Sequence[str]) -> str:
    """A regex matching any of the normalised phrases as whole tokens, longest first.

    Tokens are separated by single spaces; a word token is bounded by \\b, and a
    punctuation token is a token of its own wherever it occurs.
    """
    alternatives = []
    for phrase in sorted(set(phrases), key=lambda p: (-len(p), p)):
        tokens = phrase.split(" ")
        body = " ".join(re.escape(t) for t in tokens)
        start = r"\b" if re.fullmatch(WORD, tokens[0]) else ""
        end = r"\b" if re.fullmatch(WORD, tokens[-1]) else ""
        alternatives.append(start + body + end)
    return "(?:" + "|".join(alternatives) + ")"


# --- the lexicon file ------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    kind: str
    phrase: str
    scope_words: int | None
    source: str
    line: int


def lexicon_file() -> Path:
    """The lexicon this command uses (the site's where it has one)."""
    return resources.active().path(LEXICON_FILE)


def load_lexicon() -> Lexicon:
    return read_lexicon(lexicon_file())


@cache
def read_lexicon(path: Path) -> Lexicon:
    """Read and check a lexicon file; errors name the file, the line and what to do."""
    return build_lexicon(path, read_entries(path))


def read_entries(path: Path) -> list[Entry]:
    text = resources.read_text(path)
    reader = csv.DictReader(text.splitlines())
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise LexiconError(f"{path}: header must be {','.join(COLUMNS)}")
    entries = []
    seen: set[tuple[str, str]] = set()
    for line, row in enumerate(reader, start=2):
        where = f"{path}, line {line}"
        kind, phrase = (row["kind"] or "").strip(), (row["phrase"] or "").strip(" ")
        if kind not in KINDS:
            raise LexiconError(f"{where}, column kind: {kind!r} is not one of {', '.join(KINDS)}")
        if not phrase:
            raise LexiconError(f"{where}, column phrase: empty; give the words of the cue")
        if (kind, phrase.lower()) in seen:
            raise LexiconError(f"{where}: {kind} {phrase!r} is listed twice; keep one")
        seen.add((kind, phrase.lower()))
        scope = (row["scope_words"] or "").strip()
        if kind in SCOPED_KINDS:
            if not scope.isdigit() or int(scope) < 1:
                raise LexiconError(
                    f"{where}, column scope_words: a {kind} cue needs a whole number of "
                    f"words of 1 or more, not {scope!r}"
                )
            scope_words: int | None = int(scope)
        elif scope:
            raise LexiconError(f"{where}, column scope_words: leave it empty for {kind}")
        else:
            scope_words = None
        entries.append(Entry(kind, phrase, scope_words, (row["source"] or "").strip(), line))
    return entries


def _sentence_end_class(entries: list[Entry], path: Path) -> tuple[str, bool]:
    """The characters that end a sentence (as a regex class body), and whether an
    attached `?` ends one too."""
    chars, question = "", False
    for e in (e for e in entries if e.kind == SENTENCE_END):
        if e.phrase == QUESTION_TOKEN:
            question = True
        elif e.phrase == LINE_BREAK:
            chars += r"\n\r"
        elif len(e.phrase) == 1 and not e.phrase.isalnum() and e.phrase not in "'’ ,:-":
            chars += re.escape(e.phrase)
        else:
            raise LexiconError(
                f"{path}, line {e.line}, column phrase: a sentence end is one punctuation "
                f"character or {LINE_BREAK} (a line break), not {e.phrase!r}"
            )
    return chars, question


def _normalise_steps(
    ends: str, question_ends_sentence: bool
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    before = (
        # Every other character (non-ASCII too) separates words.
        (rf"[^A-Za-z0-9 '’,:?\-{ends}]+", " "),
        ("['’]", ""),
    )
    after = [
        (r"([0-9])\.([0-9])", r"\1\2"),
        (r"([a-z0-9])\?", r"\1 ^ ." if question_ends_sentence else r"\1 ^ "),
    ]
    if ends:
        after.append((f"[{ends}]+", f" {END_TOKEN} "))
    after += [
        (r"\?", " ? "),
        ("([,:])", r" \1 "),
        (r"\b-\b", " "),
        ("-+", " - "),
        (" +", " "),
    ]
    return before, tuple(after)


def build_lexicon(path: Path, entries: list[Entry]) -> Lexicon:
    ends, question = _sentence_end_class(entries, path)
    before, after = _normalise_steps(ends, question)
    draft = Lexicon(path, before, after, (), ())

    def tokens(e: Entry) -> str:
        if e.kind == HYPOTHETICAL_AFTER and e.phrase == QUESTION_TOKEN:
            return QUESTION_AFTER_TOKEN
        normalised = draft.normalise(e.phrase)
        if not normalised or END_TOKEN in normalised.split(" "):
            raise LexiconError(
                f"{path}, line {e.line}, column phrase: {e.phrase!r} has no word, or holds "
                "a sentence end; a cue lies within one sentence"
            )
        return normalised

    pseudo: dict[int, set[str]] = {}
    roles: dict[str, dict[str, int]] = {}
    for e in entries:
        if e.kind == SENTENCE_END:
            continue
        phrase = tokens(e)
        if e.kind == PSEUDO_NEGATION:
            pseudo.setdefault(_words(phrase), set()).add(phrase)
        else:
            roles.setdefault(phrase, {})[e.kind] = e.scope_words or 0
    pseudo_passes = tuple(
        (phrases_pattern(tuple(pseudo[n])), f"{PSEUDO}{n}") for n in sorted(pseudo, reverse=True)
    )
    grouped: dict[tuple, list[str]] = {}
    for phrase, kinds in roles.items():
        key = (
            len(phrase.split(" ")),
            _words(phrase),
            tuple(sorted((k, s) for k, s in kinds.items() if k in SCOPED_KINDS)),
            TERMINATION in kinds,
            RELATIVE_TERMINATION in kinds,
            POST_NEGATION in kinds and phrase.split(" ")[0] in (":", "-"),
        )
        grouped.setdefault(key, []).append(phrase)
    classes = tuple(
        CueClass(tuple(sorted(phrases)), *key[1:]) for key, phrases in sorted(grouped.items())
    )
    cue_tokens = tuple(
        sorted({tuple(tokens(e).split(" ")) for e in entries if e.kind != SENTENCE_END})
    )
    return Lexicon(path, before, after, pseudo_passes, classes, cue_tokens)


def _words(phrase: str) -> int:
    return sum(1 for t in phrase.split(" ") if re.fullmatch(WORD, t))


# --- pandas (pyarrow compute) -----------------------------------------------------------


def statuses_pandas(
    text: pd.Series, phrase: pd.Series | Sequence[str], lexicon: Lexicon | None = None
) -> pd.Series:
    """The status of each row: its text read for its own phrase (a Series aligned with
    `text`) or for one list of phrases (a feature's) given for every row.

    Rows are grouped by phrase and each distinct phrase's pattern is compiled once;
    everything else runs on whole columns.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    lexicon = lexicon or load_lexicon()
    normalised = normalise_arrow(text_array(text), lexicon)
    if isinstance(phrase, pd.Series):
        marked = _mark_by_phrase(normalised, phrase, lexicon)
    else:
        marked = _replaced(normalised, lexicon.mention_passes(list(phrase)))
    codes = np.full(len(text), STATUSES.index(ABSENT), dtype=np.int8)
    mentioned = pc.match_substring(marked, MENTION).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(mentioned)
    if rows.size:
        cued = _replaced(marked.take(pa.array(rows)), lexicon.mark_passes)
        codes[rows] = _row_statuses(cued, lexicon)
    statuses = pa.array(STATUSES, pa.large_string()).take(pa.array(codes))
    return pd.Series(pd.array(statuses, dtype="string[pyarrow]"), index=text.index, name="status")


def text_array(values: pd.Series) -> pa.Array:
    """The Series as one Arrow large_string array, NULL as empty text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(values.astype("string[pyarrow]").array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks else pa.array([], pa.large_string())
    return pc.fill_null(array.cast(pa.large_string()), "")


def normalise_arrow(text: pa.Array, lexicon: Lexicon) -> pa.Array:
    import pyarrow.compute as pc

    text = _replaced(text, lexicon.normalise_before_lower)
    text = _replaced(pc.utf8_lower(text), lexicon.normalise_after_lower)
    return pc.utf8_trim(text, " ")


def _replaced(text: pa.Array, passes: Sequence[tuple[str, str]]) -> pa.Array:
    import pyarrow.compute as pc

    for pattern, replacement in passes:
        text = pc.replace_substring_regex(text, pattern, replacement)
    return text


def _mark_by_phrase(normalised: pa.Array, phrase: pd.Series, lexicon: Lexicon) -> pa.Array:
    """Each row's mentions of its own phrase marked: one regex pass per distinct phrase,
    over that phrase's rows (NULL phrases mark nothing)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if not len(phrase):
        return normalised
    codes, uniques = pd.factorize(phrase.astype("string[pyarrow]"), use_na_sentinel=True)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    pieces = []
    for start, stop in zip(starts, np.r_[starts[1:], len(order)], strict=True):
        rows = normalised.take(pa.array(order[start:stop]))
        code = codes[order[start]]
        passes = lexicon.mention_passes([uniques[code]]) if code >= 0 else ()
        pieces.append(_replaced(rows, passes))
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return pa.concat_arrays(pieces).take(pa.array(inverse))


def _token_table(cued: pa.Array, lexicon: Lexicon) -> dict[str, np.ndarray]:
    """Per token of the marked texts: its row, words and what it does (step 5)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    lists = pc.split_pattern(cued, " ")
    tokens = pc.list_flatten(lists)
    row = pc.list_parent_indices(lists).to_numpy()
    first = pc.utf8_slice_codeunits(tokens, 0, 1)
    number = pc.utf8_slice_codeunits(tokens, 1)
    is_mark = pc.match_substring_regex(tokens, f"^[{MENTION}{PSEUDO}{CUE}][0-9]+$")
    value = pc.cast(pc.if_else(is_mark, number, "0"), pa.int64()).to_numpy()
    kind = np.asarray(pc.if_else(is_mark, first, "").to_numpy(zero_copy_only=False))
    is_word = pc.match_substring_regex(tokens, f"^{WORD}$").to_numpy(zero_copy_only=False)
    is_cue = kind == CUE
    class_id = np.where(is_cue, value, 0)

    def attribute(values: list[int]) -> np.ndarray:
        return np.where(is_cue, np.asarray(values, dtype=np.int64)[class_id], 0)

    classes = lexicon.classes or (CueClass(("",), 0, (), False, False),)
    words = np.where(is_word, 1, np.where(np.isin(kind, [MENTION, PSEUDO]), value, 0))
    words = words + attribute([c.words for c in classes])
    table = {
        "row": row,
        "words": words,
        "is_mention": kind == MENTION,
        "ends_sentence": (pc.equal(tokens, END_TOKEN)).to_numpy(zero_copy_only=False),
        "is_comma": (pc.equal(tokens, COMMA_TOKEN)).to_numpy(zero_copy_only=False),
        "ends_all": attribute([c.ends_all for c in classes]).astype(bool),
        "ends_pre_negation": attribute([c.ends_pre_negation for c in classes]).astype(bool),
    }
    for k in SCOPED_KINDS:
        table[k] = attribute([c.scope(k) for c in classes])
    return table


def _prefix_max_in_segments(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Running maximum of `values` (>= -1) that starts again at each new segment id.

    Segment ids never decrease, so adding segment * big lifts each segment above all
    earlier ones: one running maximum over the whole array does them all.
    """
    import numpy as np

    big = int(values.max(initial=0)) + 2
    lifted = segment * big + values
    return np.maximum.accumulate(lifted) - segment * big


def row_flags(cued: pa.Array, lexicon: Lexicon) -> np.ndarray:
    """The mention flags (`FLAG_BITS`) of each marked text (each has at least one mention)."""
    import numpy as np

    t = _token_table(cued, lexicon)
    row, words = t["row"], t["words"]
    n = len(row)
    row_start = np.r_[True, row[1:] != row[:-1]]
    before = np.cumsum(words) - words  # words before each token, over all rows
    start = before - before[row_start][row]  # ... and within its own row
    end = start + words
    ends_all = row_start | t["ends_sentence"] | t["ends_all"]
    segment_all = np.cumsum(ends_all)
    segment_pre_negation = np.cumsum(ends_all | t["ends_pre_negation"])
    post_start = ends_all | t["is_mention"] | t["is_comma"]
    segment_post = np.cumsum(post_start) - 1

    def reach(kind: str, segment: np.ndarray) -> np.ndarray:
        scope = t[kind]
        return _prefix_max_in_segments(np.where(scope > 0, end + scope, -1), segment)

    def back_reach(kind: str) -> np.ndarray:
        scope = t[kind]
        values = np.where(scope > 0, start - scope, np.iinfo(np.int64).max)
        return np.minimum.reduceat(values, np.flatnonzero(post_start))[segment_post]

    mention = t["is_mention"]
    other = start < reach(OTHER_PERSON, segment_all)
    negation = (start < reach(PRE_NEGATION, segment_pre_negation)) | (
        end > back_reach(POST_NEGATION)
    )
    hypothetical = (start < reach(HYPOTHETICAL_BEFORE, segment_all)) | (
        end > back_reach(HYPOTHETICAL_AFTER)
    )
    per_mention = {
        AFFIRMED: mention & ~other & ~negation & ~hypothetical,
        NEGATED: mention & ~other & negation,
        OTHER: mention & other,
        HYPOTHETICAL: mention & ~other & ~negation & hypothetical,
    }
    rows = int(row.max()) + 1 if n else 0
    flags = np.zeros(rows, dtype=np.int8)
    for status, bit in FLAG_BITS.items():
        flags[np.bincount(row[per_mention[status]], minlength=rows) > 0] |= bit
    return flags


def _row_statuses(cued: pa.Array, lexicon: Lexicon) -> np.ndarray:
    """The status code of each marked text (each has at least one mention)."""
    return status_codes(row_flags(cued, lexicon))


def status_codes(flags: np.ndarray) -> np.ndarray:
    """The index in STATUSES of each row's status: the first status one mention has."""
    import numpy as np

    codes = np.full(len(flags), STATUSES.index(ABSENT), dtype=np.int8)
    for status in reversed(STATUSES[:-1]):
        codes[(flags & FLAG_BITS[status]) != 0] = STATUSES.index(status)
    return codes


def flags_pandas(
    normalised: pa.Array, phrase_lists: Sequence[Sequence[str]], lexicon: Lexicon
) -> list[np.ndarray]:
    """For each phrase list, the mention flags (`FLAG_BITS`) of each normalised text.

    The cues are marked once on every text for the lists that allow it
    (`Lexicon.marks_after_cues`), and each list's mentions are marked on that; the
    other lists are marked as the steps are written (mentions, then the cues). The
    texts that mention a list are read together, in one pass over all lists.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    result = [np.zeros(len(normalised), dtype=np.int8) for _ in phrase_lists]
    after_cues = [lexicon.marks_after_cues(p) for p in phrase_lists]
    cue_marked = _replaced(normalised, lexicon.mark_passes) if any(after_cues) else None
    cued, owners = [], []
    for i, phrases in enumerate(phrase_lists):
        passes = lexicon.mention_passes(list(phrases))
        marked = _replaced(cue_marked if after_cues[i] else normalised, passes)
        rows = np.flatnonzero(pc.match_substring(marked, MENTION).to_numpy(zero_copy_only=False))
        if rows.size:
            texts = marked.take(pa.array(rows))
            cued.append(texts if after_cues[i] else _replaced(texts, lexicon.mark_passes))
            owners.append((i, rows))
    if cued:
        flags = row_flags(pa.concat_arrays(cued), lexicon)
        offset = 0
        for i, rows in owners:
            result[i][rows] = flags[offset : offset + rows.size]
            offset += rows.size
    return result


# --- DuckDB -----------------------------------------------------------------------------

PHRASES_TABLE = "context_phrases"


def register_phrases(
    con: duckdb.DuckDBPyConnection, relation: str, phrase: str, lexicon: Lexicon
) -> None:
    """The mention pattern of each distinct phrase of `relation`, as a table the SQL joins.

    Patterns are built once per distinct phrase, in Python, by the code the pandas
    engine uses. A phrase without a word has no row (it marks nothing).
    """
    import pyarrow as pa

    distinct = con.sql(f"SELECT DISTINCT {phrase} FROM {relation} WHERE {phrase} IS NOT NULL")
    names, patterns, tokens = [], [], []
    for (value,) in distinct.fetchall():
        for pattern, token in lexicon.mention_passes([value]):
            names.append(value)
            patterns.append(pattern)
            tokens.append(token)
    table = pa.table(
        {
            "phrase": pa.array(names, pa.string()),
            "pattern": pa.array(patterns, pa.string()),
            "token": pa.array(tokens, pa.string()),
        }
    )
    con.register(PHRASES_TABLE, table)


def normalised_sql(text: str, lexicon: Lexicon) -> str:
    s = f"coalesce({text}, '')"
    for pattern, replacement in lexicon.normalise_before_lower:
        s = f"regexp_replace({s}, {literal(pattern)}, {literal(replacement)}, 'g')"
    s = f"lower({s})"
    for pattern, replacement in lexicon.normalise_after_lower:
        s = f"regexp_replace({s}, {literal(pattern)}, {literal(replacement)}, 'g')"
    return f"trim({s}, ' ')"


def replaced_sql(expr: str, passes: Sequence[tuple[str, str]]) -> str:
    for pattern, replacement in passes:
        expr = f"regexp_replace({expr}, {literal(pattern)}, {literal(replacement)}, 'g')"
    return expr


def _classes_sql(lexicon: Lexicon) -> str:
    columns = ["class_id", "words", *SCOPED_KINDS, "ends_all", "ends_pre_negation"]
    rows = [
        "("
        + ", ".join(
            [str(i), str(c.words)]
            + [str(c.scope(k)) for k in SCOPED_KINDS]
            + [str(c.ends_all).lower(), str(c.ends_pre_negation).lower()]
        )
        + ")"
        for i, c in enumerate(lexicon.classes)
    ] or ["(" + ", ".join(["-1", "0"] + ["0"] * len(SCOPED_KINDS) + ["false", "false"]) + ")"]
    return f"SELECT * FROM (VALUES {', '.join(rows)}) AS v({', '.join(columns)})"


def statuses_sql(
    lexicon: Lexicon,
    relation: str,
    key: str,
    text: str,
    phrase: str | None = None,
    phrases: Sequence[str] = (),
) -> str:
    """A SELECT of (row_key, status) for every row of `relation`, keyed by `key`.

    Each row is read for its own phrase (column `phrase`, patterns from
    `register_phrases`) or, when `phrase` is None, for the list `phrases`.
    """
    normalised = normalised_sql(text, lexicon)
    if phrase is not None:
        marked = f"regexp_replace({normalised}, p.pattern, p.token, 'g')"
        source = f"{relation} AS r LEFT JOIN {PHRASES_TABLE} AS p ON r.{phrase} = p.phrase"
        marked = f"CASE WHEN p.pattern IS NOT NULL THEN {marked} ELSE '' END"
    else:
        marked = replaced_sql(normalised, lexicon.mention_passes(list(phrases)))
        source = f"{relation} AS r"
    marked_sql = f"""context_marked AS (
    -- Each row's text normalised, with the mentions of its phrase marked M<words>.
    SELECT r.{key} AS row_key, {marked} AS marked
    FROM {source}
)"""
    case = " ".join(
        f"WHEN (s.flags & {FLAG_BITS[status]}) <> 0 THEN {literal(status)}"
        for status in STATUSES[:-1]
    )
    return f"""WITH
{marked_sql},
{reading_sql(lexicon)}
SELECT r.{key} AS row_key, CASE {case} ELSE {literal(ABSENT)} END AS status
FROM {relation} AS r LEFT JOIN context_flags AS s ON r.{key} = s.row_key"""


def reading_sql(lexicon: Lexicon, cues_marked: bool = False) -> str:
    """CTEs that read the marked texts of `context_marked` (row_key, marked), ending in
    `context_flags` (row_key, flags): the mention flags (`FLAG_BITS`) of each row that
    mentions its phrase (steps 3 to 5). With `cues_marked`, `context_marked` also has a
    column `cues_marked`, TRUE where its cues are marked already."""
    cued = replaced_sql("marked", lexicon.mark_passes)
    if cues_marked:
        cued = f"CASE WHEN cues_marked THEN marked ELSE {cued} END"
    reach = {
        k: f"CASE WHEN {k} > 0 THEN start_word + words + {k} END"
        for k in (PRE_NEGATION, HYPOTHETICAL_BEFORE, OTHER_PERSON)
    }
    back = {
        k: f"CASE WHEN {k} > 0 THEN start_word - {k} END"
        for k in (POST_NEGATION, HYPOTHETICAL_AFTER)
    }
    upto = "ORDER BY position ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
    # Every word token becomes this one word: a word's only part in the reading is
    # that it counts one word, so texts that differ only in their words read alike.
    word = literal(f"\\1{PLAIN_WORD}")
    return f"""context_cued AS MATERIALIZED (
    -- Rows that mention the phrase: pseudo-negations (P<words>) and cues (C<class>)
    -- marked, longest first; then each word written as {PLAIN_WORD} (its shape).
    SELECT row_key, regexp_replace({cued}, {literal(WORD_TOKEN)}, {word}, 'g') AS shape
    FROM context_marked
    WHERE contains(marked, {literal(MENTION)})
),
context_shapes AS MATERIALIZED (
    -- Each distinct shape once (many texts share one: "no M2" is every "no <mention>"),
    -- with a key; the steps below read the shapes, and context_flags joins them back.
    SELECT shape, row_number() OVER () AS shape_key
    FROM (SELECT DISTINCT shape FROM context_cued)
),
context_tokens AS (
    -- The tokens of each shape in order, a run of words being one token (the words
    -- between two marks or punctuation tokens only add up).
    SELECT row_key, unnest(tokens) AS token, generate_subscripts(tokens, 1) AS position
    FROM (
        SELECT shape_key AS row_key, regexp_extract_all(shape, {literal(RUN_OR_TOKEN)}) AS tokens
        FROM context_shapes
    )
),
context_roles AS (
    -- What each token does: its words, whether it is a mention, ends a sentence or a
    -- scope, and each cue kind's scope in words (0: not that kind).
    SELECT
        row_key,
        position,
        -- (A token is a run of n words, {PLAIN_WORD} n times with n - 1 spaces, a mark:
        -- M, P or C and digits, or one punctuation character; its first character
        -- tells which.)
        CASE
            WHEN token[1] = {literal(PLAIN_WORD)} THEN (length(token) + 1) // 2
            WHEN token[1] IN ({literal(MENTION)}, {literal(PSEUDO)})
                THEN CAST(token[2:] AS BIGINT)
            ELSE coalesce(c.words, 0)
        END AS words,
        token[1] = {literal(MENTION)} AS is_mention,
        token = {literal(END_TOKEN)} AS ends_sentence,
        token = {literal(COMMA_TOKEN)} AS is_comma,
        coalesce(c.ends_all, false) AS ends_all,
        coalesce(c.ends_pre_negation, false) AS ends_pre_negation,
        {", ".join(f"coalesce(c.{k}, 0) AS {k}" for k in SCOPED_KINDS)}
    FROM (
        SELECT *, CASE WHEN token[1] = {literal(CUE)}
            THEN CAST(token[2:] AS BIGINT) END AS class_id
        FROM context_tokens
    ) AS t LEFT JOIN ({_classes_sql(lexicon)}) AS c USING (class_id)
),
context_positions AS (
    -- Words before each token in its row, and the segments a scope cannot leave: a
    -- sentence end or a contrast termination ends every scope, a relative word a
    -- pre-negation's too; a cue after a mention reaches back to that mention only,
    -- and not across a comma.
    SELECT
        *,
        -- (all four sums over the same frame, so that one pass computes them)
        sum(words) OVER (PARTITION BY row_key {upto}) - words AS start_word,
        sum(CAST(ends_sentence OR ends_all AS INTEGER)) OVER (
            PARTITION BY row_key {upto}) AS segment_all,
        sum(CAST(ends_sentence OR ends_all OR ends_pre_negation AS INTEGER)) OVER (
            PARTITION BY row_key {upto}) AS segment_pre_negation,
        sum(CAST(ends_sentence OR ends_all OR is_mention OR is_comma AS INTEGER)) OVER (
            PARTITION BY row_key {upto}) AS segment_post
    FROM context_roles
),
context_scopes AS (
    -- How far the cues before each token reach forward (the first word past their
    -- scope), and how far the cues after a mention reach back.
    SELECT
        *,
        max({reach[PRE_NEGATION]}) OVER (
            PARTITION BY row_key, segment_pre_negation {upto}) AS negation_reach,
        max({reach[HYPOTHETICAL_BEFORE]}) OVER (
            PARTITION BY row_key, segment_all {upto}) AS hypothetical_reach,
        max({reach[OTHER_PERSON]}) OVER (
            PARTITION BY row_key, segment_all {upto}) AS other_reach,
        min({back[POST_NEGATION]}) OVER (
            PARTITION BY row_key, segment_post) AS negation_back_reach,
        min({back[HYPOTHETICAL_AFTER]}) OVER (
            PARTITION BY row_key, segment_post) AS hypothetical_back_reach
    FROM context_positions
    -- Only mentions and cues take part from here on (words, ends and terminations
    -- have done their part: the positions and segments above).
    WHERE is_mention OR {" OR ".join(f"{k} > 0" for k in SCOPED_KINDS)}
),
context_mentions AS (
    SELECT
        row_key,
        coalesce(start_word < other_reach, false) AS is_other,
        coalesce(start_word < negation_reach, false)
            OR coalesce(start_word + words > negation_back_reach, false) AS in_negation,
        coalesce(start_word < hypothetical_reach, false)
            OR coalesce(start_word + words > hypothetical_back_reach, false) AS in_hypothetical
    FROM context_scopes
    WHERE is_mention
),
context_shape_flags AS (
    -- Another person wins over negation, negation over hypothetical (per mention);
    -- a shape has the flag of each status one of its mentions has.
    SELECT
        row_key,
        CAST(
            CASE WHEN bool_or(NOT is_other AND NOT in_negation AND NOT in_hypothetical)
                THEN {FLAG_BITS[AFFIRMED]} ELSE 0 END
            + CASE WHEN bool_or(NOT is_other AND in_negation) THEN {FLAG_BITS[NEGATED]} ELSE 0 END
            + CASE WHEN bool_or(is_other) THEN {FLAG_BITS[OTHER]} ELSE 0 END
            + CASE WHEN bool_or(NOT is_other AND NOT in_negation AND in_hypothetical)
                THEN {FLAG_BITS[HYPOTHETICAL]} ELSE 0 END
            AS TINYINT) AS flags
    FROM context_mentions
    GROUP BY row_key
),
context_flags AS (
    -- Each row has the flags of its shape.
    SELECT context_cued.row_key, context_shape_flags.flags
    FROM context_cued
        JOIN context_shapes USING (shape)
        JOIN context_shape_flags ON context_shape_flags.row_key = context_shapes.shape_key
)"""


def statuses_duckdb(
    text: pd.Series, phrase: pd.Series | Sequence[str], lexicon: Lexicon | None = None
) -> pd.Series:
    """The DuckDB engine's statuses for a frame's columns (tests and tools)."""
    import duckdb
    import pandas as pd
    import pyarrow as pa

    from pipelines.config import DEFAULT_MEMORY_LIMIT

    lexicon = lexicon or load_lexicon()
    per_row = isinstance(phrase, pd.Series)
    columns = {
        "row_key": pa.array(range(len(text)), pa.int64()),
        "text": pa.array(text.astype("string[pyarrow]").array).cast(pa.string()),
    }
    if per_row:
        columns["phrase"] = pa.array(phrase.astype("string[pyarrow]").array).cast(pa.string())
    con = duckdb.connect(config={"memory_limit": DEFAULT_MEMORY_LIMIT})
    try:
        con.register("context_input", pa.table(columns))
        if per_row:
            register_phrases(con, "context_input", "phrase", lexicon)
            sql = statuses_sql(lexicon, "context_input", "row_key", "text", phrase="phrase")
        else:
            sql = statuses_sql(lexicon, "context_input", "row_key", "text", phrases=list(phrase))
        result = con.sql(f"SELECT status FROM ({sql}) ORDER BY row_key").to_arrow_table()
    finally:
        con.close()
    return pd.Series(
        pd.array(result.column("status"), dtype="string[pyarrow]"), index=text.index, name="status"
    )

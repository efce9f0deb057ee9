"""Free-text matching with negation, as regular expressions both engines run.

Both engines use RE2 (DuckDB's regexp functions; pyarrow's regex kernels behind
pandas' Arrow-backed strings), and see the same normalised text, so a "word" and
a "clause" mean the same thing in both. The steps are listed in
schemas/red_flags.yml (`text:`): after normalisation the text is lower-case ASCII
words separated by single spaces, with " , " between clauses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WORD = "[a-z0-9']+"
# Step 2: every run of characters other than [a-z0-9'.;,] becomes one space. The
# pattern leaves a lone space alone (it would become itself), which is far faster.
KEEP = "[^a-z0-9'.;,]{2,}|[^a-z0-9'.;, ]"
CLAUSE_MARK = " , "
# In the lower-cased text before normalisation: what separates a phrase's words
# (a run that normalisation turns into one space) and what bounds a word.
RAW_GAP = "[^a-z0-9'.;,]+"
RAW_EDGE = "[^a-z0-9]"
# The characters the patterns above never step over inside a mention or a cue.
HARD_MARKS = ".;,"


def normalise_phrase(phrase: str) -> str:
    """A phrase as it appears in normalised text: lower case, single spaces."""
    return " ".join(re.sub(KEEP, " ", phrase.lower()).split())


def keywords(phrases: list[str]) -> list[str]:
    """Literal substrings one of which every mention contains (a cheap pre-filter).

    The longest word of each phrase; a keyword containing another is dropped.
    """
    words = {max(normalise_phrase(p).split(), key=len) for p in phrases}
    return sorted(w for w in words if not any(o != w and o in w for o in words))


def alternation(phrases: list[str]) -> str:
    """Longest first, so that leftmost-first matching prefers the longer phrase."""
    unique = sorted({normalise_phrase(p) for p in phrases}, key=lambda p: (-len(p), p))
    return "|".join(re.escape(p).replace("\\ ", " ") for p in unique)


@dataclass(frozen=True)
class TextRules:
    """The regular expressions of the text rules, built once from red_flags.yml."""

    cues: tuple[str, ...]
    clause_marks: str
    clause_words: tuple[str, ...]
    scope_words: int

    @property
    def clause_word_pattern(self) -> str:
        return rf"\b(?:{alternation(list(self.clause_words))})\b"

    @property
    def clause_mark_pattern(self) -> str:
        marks = re.escape(self.clause_marks)
        return f" *[{marks}][ {marks}]*"

    @property
    def cue_pattern(self) -> str:
        return rf"\b(?:{alternation(list(self.cues))})\b"

    def raw_mention_pattern(self, phrases: list[str]) -> str:
        """A mention in the lower-cased text before normalisation.

        Matches exactly where mention_pattern matches the normalised text: a word
        gap is a run normalisation turns into one space, a word edge is any
        character that is not [a-z0-9] (or the ends).
        """
        unique = sorted({normalise_phrase(p) for p in phrases}, key=lambda p: (-len(p), p))
        alternatives = "|".join(RAW_GAP.join(re.escape(w) for w in p.split()) for p in unique)
        return f"(?:^|{RAW_EDGE})(?:{alternatives})(?:{RAW_EDGE}|$)"

    def mention_pattern(self, phrases: list[str]) -> str:
        """Any mention of one of the phrases, at word boundaries."""
        return rf"\b(?:{alternation(phrases)})\b"

    def negated_mention_pattern(self, phrases: list[str]) -> str:
        """A cue, then at most (scope - words of the cue) words, then a mention.

        Words never include the clause mark, so the match stays inside one clause.
        Greedy matching makes one match cover every mention the cue negates.
        """
        by_length: dict[int, list[str]] = {}
        for cue in self.cues:
            by_length.setdefault(len(normalise_phrase(cue).split()), []).append(cue)
        branches = [
            f"(?:{alternation(cues)})(?: {WORD}){{0,{self.scope_words - n}}}"
            for n, cues in sorted(by_length.items())
            if self.scope_words - n >= 0
        ]
        return rf"\b(?:{'|'.join(branches)}) (?:{alternation(phrases)})\b"

"""Red-flag scoring: rules as data (schemas/red_flags.yml), two engines, one result.

- `rules.py`: the rule file (and its value sets) loaded into predicate trees;
- `predicates.py`: the predicate vocabulary, each with its pandas and SQL translation;
- `text.py`, `normalise.py`, `matches.py`: free text and codes, matched per distinct value;
- `history.py`: what the patient's earlier presentations say about this one;
- `duckdb_engine.py`, `pandas_engine.py`: the two implementations; `engines.py` picks one;
- `output.py`: the shape of features.presentation_flags; `jobs.py`: a file or the
  warehouse scored.
"""

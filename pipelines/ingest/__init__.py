"""The ingest stage: every input file read, scrubbed, validated and loaded, or said why not.

- `files.py`: which file of a directory is which table;
- `readers.py`: CSV, Parquet and JSON Lines in bounded chunks, every line numbered;
- `prepare.py`: one file read, scrubbed and validated into a work directory (any worker);
- `load.py`: a prepared file into raw, quarantine and staging (the single writer);
- `summary.py`: what became of each file (`IngestSummary`), and its printed table;
- `stage.py`: the one loop over a directory's files, for `redflags validate` and the flow.

Nothing is imported here, so that `pipelines.ingest.files` stays cheap to import (the
command line checks its arguments with it before the heavy libraries load).
"""

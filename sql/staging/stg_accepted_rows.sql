-- staging.{table}: the accepted rows of one file, each contract column cast to its type.
-- Renames and casts only: which rows are accepted was decided by validation, and the
-- casts are generated from schemas/{table}.yml by pipelines/ingest.py (cast_sql).
INSERT INTO staging.{table}
SELECT
    {casts},
    source_file,
    source_row,
    run_id
FROM accepted_rows

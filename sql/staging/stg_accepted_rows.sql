-- staging.{{ table }}: the accepted rows of one file, each contract column cast to its type.
-- Renames and casts only: which rows are accepted was decided by validation, and the
-- casts are generated from schemas/{{ table }}.yml (pipelines/ingest/prepare.py, cast_sql).
-- The loader adds the lineage (source_file, run_id) when it inserts these rows.
SELECT
    {{ casts | join(",\n    ") }},
    source_row
FROM accepted_rows

"""Cohorts: index presentations, follow-up, outcomes, summaries, marts and extracts.

The rules are data (schemas/cohorts.yml) and SQL (sql/cohorts/, sql/marts/); this
package loads the definition, renders and runs the models in order, publishes the
marts in one transaction, and writes suppressed extracts for researchers.
"""

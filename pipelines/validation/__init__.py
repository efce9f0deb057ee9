"""Great Expectations suites and Checkpoints for the input contracts, and the identifier guard."""

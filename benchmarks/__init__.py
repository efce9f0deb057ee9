"""The performance harness: `python -m benchmarks` (or `make bench`). Not part of `make test`."""

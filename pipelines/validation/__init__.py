"""Great Expectations suites and Checkpoints for the input contracts."""

from pipelines.lazy_modules import defer_import

# Great Expectations imports scipy.stats at the top of three modules (a KL-divergence
# expectation and two Kolmogorov-Smirnov metrics) and calls it only inside them; no
# suite of ours uses them. Loading it anyway cost 1.2 CPU s of every run's start, on
# the path before the first file is read.
defer_import("scipy.stats")

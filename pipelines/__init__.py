"""redflags: red-flag scoring and referral cohorts for back-pain presentations."""

__version__ = "0.1.0"

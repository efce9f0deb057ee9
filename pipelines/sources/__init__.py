"""Source adapters: each turns input files into the canonical tables."""

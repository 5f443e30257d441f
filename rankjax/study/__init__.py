"""The study: supervision variants over seeds, per-bucket statistics and the report."""

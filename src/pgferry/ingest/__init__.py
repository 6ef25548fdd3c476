"""Continuous loading: `pgferry watch` loads every object version under an
S3 prefix exactly once, keeping a ledger in the target (see ledger.py)."""

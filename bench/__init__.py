"""Benchmarks (see README.md).  A package, so that `bench.installed` is
found before a script named bench.py."""

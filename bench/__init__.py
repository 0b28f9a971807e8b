"""Benchmarks: each prints a ratio against a bare baseline run in the same process."""

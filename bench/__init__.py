"""Benchmarks: each module measures something and prints figures (never asserted in tests)."""

"""Benchmarks that print figures (medians over several runs) and keep docs/benchmarks.md current."""

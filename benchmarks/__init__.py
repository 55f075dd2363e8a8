"""`make bench`: a benchmark harness for Signoff's non-functional budgets (not a test suite).

Run it with `python -m benchmarks.run`; see docs/benchmarks.md for what it measures.
"""

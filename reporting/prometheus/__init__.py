"""Prometheus `/metrics`: gauges and counters of the approval process, behind a token."""

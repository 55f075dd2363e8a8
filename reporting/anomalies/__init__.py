"""Anomaly alerts: rolling baselines per approver and team, and alerts when approval behaviour
deviates."""

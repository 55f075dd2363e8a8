"""Anomaly detection in the background: beat runs the detectors over the rolling window."""

from celery import shared_task

from reporting.anomalies.services import detect_anomalies


@shared_task
def detect_anomalies_task() -> int:
    """Run every detector once; returns how many alerts were raised (reruns raise nothing new)."""
    return len(detect_anomalies())

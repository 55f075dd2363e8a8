"""Timed pipeline work: answering runs whose gate was blocked when their release was approved."""

from celery import shared_task

from approvals.pipelines.answers import answer_waiting


@shared_task
def answer_waiting_pipelines_task() -> int:
    """Answer waiting pipeline runs whose gate has decided; how many were answered."""
    return answer_waiting()

"""Timed review work run by Celery beat."""

from celery import shared_task

from changes.reviews import services


@shared_task
def chase_reviews_task() -> dict[str, int]:
    """Remind owners of reviews due soon and escalate overdue ones to the CAB."""
    return services.chase_reviews()

"""The CAB's timed work, run by Celery beat."""

from celery import shared_task
from django.utils import timezone

from approvals.cab import services


@shared_task
def prepare_cab_meetings_task() -> dict[str, int]:
    """Create the coming four weeks' meetings and build the agendas of the coming week's."""
    return services.prepare_cab_meetings(now=timezone.now())

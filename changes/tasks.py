"""The changes app's Celery tasks, one module per concern; Celery's autodiscovery reads this one."""

from changes.reviews.tasks import chase_reviews_task

__all__ = ["chase_reviews_task"]

"""What a Celery task can know about its own delivery.

Tasks are acknowledged when they finish (settings: acks_late), so when a worker dies mid-task
the broker hands the same message out again, marked as redelivered. A task that claims its work
with a conditional update (QUEUED -> RUNNING) would otherwise find its own dead claim and do
nothing; with this flag it takes the claim over.
"""

from __future__ import annotations

from celery import Task


def redelivered(task: Task) -> bool:
    """True when the message running `task` was handed out before, to a worker that died."""
    return bool((task.request.delivery_info or {}).get("redelivered"))

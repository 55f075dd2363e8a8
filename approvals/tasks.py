"""Timed approval work run by Celery beat."""

from celery import shared_task

from approvals import services

# Celery's autodiscovery reads this module only: each concern's tasks are registered through it.
from approvals.cab.tasks import prepare_cab_meetings_task  # noqa: F401
from approvals.pipelines.tasks import answer_waiting_pipelines_task  # noqa: F401
from approvals.verification.tasks import verify_deployments_task  # noqa: F401


@shared_task
def reresolve_open_stages_task() -> int:
    """Keep undecided stages' approver lists in line with current roles and people."""
    return services.reresolve_open_stages()


@shared_task
def expire_requests_task() -> int:
    """Expire undecided requests past their deadline and approvals past their validity."""
    return services.expire_requests()


@shared_task
def remind_due_stages_task() -> int:
    """Remind undecided approvers of stages whose reminder time has come."""
    return services.remind_due_stages()


@shared_task
def escalate_overdue_stages_task() -> int:
    """Escalate overdue stages to the CAB."""
    return services.escalate_overdue_stages()

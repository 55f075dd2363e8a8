"""The model's steps about time: hours going by, and the periodic tasks that act on it."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import strategies as st
from hypothesis.stateful import rule

from approvals.pipelines.answers import answer_waiting
from approvals.services import (
    escalate_overdue_stages,
    expire_requests,
    remind_due_stages,
    reresolve_open_stages,
)
from governance.authority.services import expire_role_grants as expire_grants


class TimeSteps:
    """Time moves on and Celery beat runs (mixed into the model)."""

    @rule(hours=st.sampled_from((1, 5, 26, 80, 170)))
    def time_passes(self, hours: int) -> None:
        """Hours go by: windows open and close, grants and requests reach their expiry."""
        self.step("time_passes")
        self.clock.at += timedelta(hours=hours)

    @rule()
    def periodic_tasks(self) -> None:
        """Celery beat runs: undecided requests and stale approvals expire, grants past their
        expiry are revoked, open stages' approvers are re-resolved, undecided approvers are
        reminded and overdue stages escalated to the CAB, and jobs waiting on the gate
        answered."""
        self.step("periodic_tasks")
        expire_requests()
        expire_grants()
        reresolve_open_stages()
        remind_due_stages()
        escalate_overdue_stages()
        answer_waiting()

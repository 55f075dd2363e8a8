"""The approval workflow, one module per moment: request, decisions, sweeps, deployments.

Every function here is the single path for its transition, used alike by the UI, the API and
integrations, so the segregation-of-duties rules hold on all of them. Callers import this
package (`from approvals import services`); the modules are its inside.
"""

from approvals.services.decisions import record_decision, revoke_approval
from approvals.services.deployments import record_deployment
from approvals.services.escalation import escalate_overdue_stages, remind_due_stages
from approvals.services.requests import (
    ReleaseInput,
    add_evidence,
    may_withdraw,
    request_again,
    request_approval,
    stage_people,
    withdraw_request,
)
from approvals.services.sweeps import expire_requests, reresolve_open_stages

__all__ = [
    "ReleaseInput",
    "add_evidence",
    "escalate_overdue_stages",
    "expire_requests",
    "may_withdraw",
    "record_decision",
    "record_deployment",
    "remind_due_stages",
    "request_again",
    "request_approval",
    "reresolve_open_stages",
    "revoke_approval",
    "stage_people",
    "withdraw_request",
]

"""Terraform plans: a pipeline submits the plan of an infrastructure release, Signoff summarises
it (governance.policy.terraform) and re-plans the approval so the policy can tighten it.

One plan per release: a changed plan is a different artifact and needs a new request. When the
release's digest is the SHA-256 of the plan's bytes, the plan *is* the artifact; releases whose
image is `terraform-plan` (the convention for infrastructure releases) must be such releases.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.exceptions import InvalidRequest, InvalidTransition, NotEligible
from approvals.models import ApprovalRequest, InfrastructurePlan, Release
from approvals.services import requests as approval_requests
from governance.authority.selectors import may_act
from governance.ledger import services as ledger
from governance.models import User
from governance.policy.terraform import PlanError, summarise

# The image an infrastructure release names: its digest is then the digest of the plan itself.
PLAN_IMAGE = "terraform-plan"
# What the summary keeps (and the release page and the policy's `plan` show).
COUNT_KEYS = ("creates", "updates", "deletes", "replaces", "no_ops")
SUMMARY_KEYS = (*COUNT_KEYS, "sensitive", "world_open")
REPLAN_REASON = "Terraform plan submitted"
_CLOSED = (
    ApprovalRequest.Status.REJECTED,
    ApprovalRequest.Status.WITHDRAWN,
    ApprovalRequest.Status.EXPIRED,
)


class InvalidPlan(InvalidRequest):
    """The body is not a Terraform plan Signoff can read."""

    code = "invalid_plan"


@dataclass(frozen=True)
class SubmittedPlan:
    """The stored plan and what its artifact is: "plan" when the release's digest is the plan's."""

    plan: InfrastructurePlan
    artifact: str


def plan_digest(body: bytes) -> str:
    """The digest a release names when the plan itself is its artifact."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def may_submit_plan(release: Release, user: User) -> bool:
    """Only the release's pipeline: the account that requested it, or anyone who may request
    releases of the service to that environment."""
    if not user.is_active:
        return False
    if user.pk == release.requested_by_id:
        return True
    return may_act(user, "request", release.service, release.environment)


def check_may_submit_plan(release: Release, user: User) -> None:
    """NotEligible unless `user` may submit the release's plan (callers check before reading
    a large body; `submit_plan` checks again)."""
    if not may_submit_plan(release, user):
        raise NotEligible(
            "Only the pipeline that requested this release, or someone who may request "
            f"releases of {release.service.name} to {release.environment.name}, can submit "
            "its Terraform plan."
        )


def submit_plan(*, release: Release, actor: User, body: bytes) -> SubmittedPlan:
    """Store the release's Terraform plan, ledger it and re-plan its approval request.

    Refusals change nothing: NotEligible (not the release's pipeline), InvalidPlan (not a
    readable plan), InvalidRequest (a `terraform-plan` release whose digest is not the plan's),
    InvalidTransition (a plan already submitted, or the request is closed or expired).
    """
    check_may_submit_plan(release, actor)
    # Parsed before any lock: a big plan takes a moment, and a refused one takes no lock at all.
    summary = _summary(body)
    sha256 = plan_digest(body)
    _check_digest(release, sha256)
    try:
        with transaction.atomic(), ledger.deferred():
            plan = _store(release, actor, summary, sha256)
    except IntegrityError:
        # Two submissions raced past the check (SQLite takes no row lock): one plan won.
        if not InfrastructurePlan.objects.filter(release=release).exists():
            raise
        raise _already_submitted(same=False) from None
    artifact = "plan" if release.digest == sha256 else "image"
    return SubmittedPlan(plan=plan, artifact=artifact)


def _summary(body: bytes) -> dict:
    try:
        return summarise(body)
    except PlanError as exc:
        raise InvalidPlan(exc.message) from None


def _check_digest(release: Release, sha256: str) -> None:
    if release.image == PLAN_IMAGE and release.digest != sha256:
        raise InvalidRequest(
            f"This release's artifact is a Terraform plan with digest {release.digest}, but the "
            f"plan sent has digest {sha256}: send the exact bytes of the plan file the release "
            "was requested for (curl --data-binary @plan.json; -d drops its line breaks), or "
            "request a new release for this plan."
        )


def _store(release: Release, actor: User, summary: dict, sha256: str) -> InfrastructurePlan:
    # The lock makes a second submission wait for the first and then see its plan.
    approval = ApprovalRequest.objects.select_for_update().get(release=release)
    _check_open(approval)
    existing = InfrastructurePlan.objects.filter(release=release).only("sha256").first()
    if existing is not None:
        raise _already_submitted(existing.sha256 == sha256)
    plan = InfrastructurePlan.objects.create(
        release=release,
        format_version=summary["format_version"],
        terraform_version=summary["terraform_version"],
        sha256=sha256,
        summary={key: summary[key] for key in SUMMARY_KEYS},
        submitted_by=actor,
    )
    ledger.append(
        kind="iac.plan_submitted",
        subject=f"release:{release.pk}",
        actor=actor.username,
        payload=_ledger_payload(release, plan, summary),
    )
    # The policy sees `plan` from here on (approvals.context); strictest wins, never looser.
    approval_requests.replan(release=release, actor=actor, reason=REPLAN_REASON)
    return plan


def _check_open(approval: ApprovalRequest) -> None:
    """A plan may tighten a pending or approved request; a closed one is over (409)."""
    expired = _lapsed(approval, timezone.now())
    if approval.status in _CLOSED or expired:
        state = "expired" if expired else approval.get_status_display().lower()
        raise InvalidTransition(
            f"This request is {state}; a plan can no longer change it. Request a new release "
            "for this plan."
        )


def _lapsed(approval: ApprovalRequest, now: datetime) -> bool:
    # Past its time but not yet swept (approvals.services.sweeps): the gate already says expired.
    if approval.status == ApprovalRequest.Status.PENDING:
        return approval.expires_at <= now
    if approval.status == ApprovalRequest.Status.APPROVED:
        return approval.valid_until is not None and approval.valid_until <= now
    return False


def _already_submitted(same: bool) -> InvalidTransition:
    if same:
        return InvalidTransition("This plan was already submitted for this release.")
    return InvalidTransition(
        "This release already has a Terraform plan; a changed plan is a different artifact: "
        "request a new release."
    )


def _ledger_payload(release: Release, plan: InfrastructurePlan, summary: dict) -> dict:
    return {
        "service": release.service.slug,
        "environment": release.environment.slug,
        "sha256": plan.sha256,
        "artifact": "plan" if release.digest == plan.sha256 else "image",
        "format_version": plan.format_version,
        "terraform_version": plan.terraform_version,
        "summary": {
            **{key: summary[key] for key in (*COUNT_KEYS, "reads", "forgets")},
            "sensitive": len(summary["sensitive"]),
            "world_open": len(summary["world_open"]),
        },
    }

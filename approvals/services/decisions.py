"""Recording approvers' decisions on the open stage, under a row lock."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from approvals.authority import Capacity, decision_capacity
from approvals.exceptions import (
    InvalidRequest,
    InvalidTransition,
    NotEligible,
    SelfApprovalForbidden,
    StepUpRequired,
)
from approvals.gate import refresh_snapshot
from approvals.models import ApprovalRequest, ApprovalStage, Decision, Release
from approvals.services.transitions import advance, transition
from governance.identity.stepup import verify_step_up
from governance.ledger import services as ledger
from governance.models import User


def record_decision(
    *,
    release: Release,
    actor: User,
    verdict: str,
    rationale: str,
    digest: str | None = None,
    step_up_code: str | None = None,
    channel: str = "ui",
    client_address: str | None = None,
    user_agent: str = "",
) -> Decision:
    """Record an approve/reject on the open stage, counting distinct people under a row lock.

    `client_address` and `user_agent` say where the decision came from (the user agent is kept
    only as a fingerprint), so an unusual place can be noticed later.
    """
    rationale = (rationale or "").strip()
    if verdict not in Decision.Verdict.values:
        raise InvalidRequest(
            "Decision must be 'approve' or 'reject'.",
            fields={"decision": ["Must be 'approve' or 'reject'."]},
        )
    if not rationale:
        raise InvalidRequest(
            "A rationale is required for every decision.",
            fields={"rationale": ["This field is required."]},
        )
    if digest is not None and digest != release.digest:
        raise InvalidRequest(
            f"You reviewed {digest}, but this release is {release.digest}.",
            fields={"digest": ["Does not match the release's artifact."]},
        )
    now = timezone.now()
    with transaction.atomic(), ledger.deferred():
        # Locking the request serialises concurrent decisions: none is lost or counted twice.
        approval = ApprovalRequest.objects.select_for_update().get(release=release)
        # Prefetching only saves queries: dropping either lookup (a mutant) answers the same.
        approval = ApprovalRequest.objects.prefetch_related(
            "stages__eligible_approvers", "stages__decisions"
        ).get(pk=approval.pk)
        capacity = decision_capacity(release, approval, actor, now)
        if capacity.blocker:
            raise _refusal(capacity, release, approval, actor, now)
        stage, principal = capacity.stage, capacity.on_behalf_of
        method = _step_up(stage, actor, step_up_code)
        decision = Decision.objects.create(
            request=approval,
            stage=stage,
            approver=actor,
            on_behalf_of=principal,
            verdict=verdict,
            rationale=rationale,
            digest=release.digest,
            step_up_method=method,
            dual_control=approval.dual_control,
            channel=channel,
            client_address=client_address,
            client_device=Decision.device_fingerprint(user_agent),
            created_at=now,
        )
        ledger.append(
            kind="decision.recorded",
            subject=f"release:{release.pk}",
            actor=actor.username,
            payload={
                "service": release.service.slug,
                "stage": stage.key,
                "verdict": verdict,
                "rationale": rationale,
                "digest": release.digest,
                "on_behalf_of": principal.username if principal else None,
                "step_up": method,
                "channel": channel,
            },
        )
        _apply_decision(approval, stage, decision, actor, now)
        refresh_snapshot(approval)
    return decision


def _refusal(capacity: Capacity, release: Release, approval: ApprovalRequest, actor: User, now):
    if approval.status != ApprovalRequest.Status.PENDING or approval.expires_at <= now:
        return InvalidTransition(capacity.blocker)
    if actor.pk in release.conflicted_user_ids():
        return SelfApprovalForbidden(capacity.blocker)
    return NotEligible(capacity.blocker)


def _step_up(stage: ApprovalStage, actor: User, code: str | None) -> str:
    if not stage.step_up:
        return ""
    method = verify_step_up(actor, code)
    if method is None:
        raise StepUpRequired(
            f"{stage.name} requires a fresh one-time code from your authenticator app. "
            "Enrol one on your profile page if you have none.",
            fields={"step_up_code": ["A valid one-time code is required."]},
        )
    return method


def _apply_decision(
    approval: ApprovalRequest, stage: ApprovalStage, decision: Decision, actor: User, now
) -> None:
    if decision.verdict == Decision.Verdict.REJECT:
        ApprovalStage.objects.filter(pk=stage.pk).update(
            status=ApprovalStage.Status.REJECTED, completed_at=now
        )
        # Waiting stages, and parallel ones still open, end with the request.
        approval.stages.filter(
            status__in=[ApprovalStage.Status.WAITING, ApprovalStage.Status.ACTIVE]
        ).update(status=ApprovalStage.Status.CANCELLED, completed_at=now)
        transition(approval, ApprovalRequest.Status.REJECTED, actor, now)
        return
    count = (
        stage.decisions.filter(verdict=Decision.Verdict.APPROVE)
        .values("approver")
        .distinct()
        .count()
    )
    done = count >= stage.required_count and not stage.teams_still_needed()
    ApprovalStage.objects.filter(pk=stage.pk).update(
        approval_count=count,
        status=ApprovalStage.Status.APPROVED if done else ApprovalStage.Status.ACTIVE,
        completed_at=now if done else None,
    )
    if done:
        advance(approval, actor, now)


def revoke_approval(*, release: Release, actor: User, reason: str) -> Decision:
    """Take back one's own approval (made as oneself or for someone) while its stage is open.

    The decision is kept, marked revoked, and counts nowhere from then on; the seat is free, so
    the same person may decide again later under the same rules as everyone.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest(
            "A reason is required to revoke an approval.", fields={"reason": ["Required."]}
        )
    now = timezone.now()
    with transaction.atomic(), ledger.deferred():
        approval = ApprovalRequest.objects.select_for_update().get(release=release)
        # select_related only saves queries, and on an open stage of a pending request every
        # standing decision is an approval (a rejection closes both at once): mutation testing
        # keeps mutants dropping either alive, and they are equivalent.
        decision = (
            Decision.objects.select_related("stage", "on_behalf_of")
            .filter(request=approval, approver=actor, verdict=Decision.Verdict.APPROVE)
            .filter(stage__status=ApprovalStage.Status.ACTIVE)
            .first()
        )
        if approval.status != ApprovalRequest.Status.PENDING or decision is None:
            raise InvalidTransition(
                "You have no approval on a stage that is still open: an approval counts for good "
                "once its stage is complete or the request is closed."
            )
        Decision.objects.filter(pk=decision.pk).update(revoked_at=now, revocation_reason=reason)
        stage = decision.stage
        count = stage.decisions.filter(verdict=Decision.Verdict.APPROVE).count()
        ApprovalStage.objects.filter(pk=stage.pk).update(approval_count=count)
        ledger.append(
            kind="decision.revoked",
            subject=f"release:{release.pk}",
            actor=actor.username,
            payload={
                "stage": stage.key,
                "reason": reason,
                "on_behalf_of": decision.on_behalf_of.username if decision.on_behalf_of else None,
            },
        )
        refresh_snapshot(approval)
    decision.revoked_at, decision.revocation_reason = now, reason
    return decision

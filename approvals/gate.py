"""The gate: may this release (this digest) go to its environment now?

Read-only and computed live, so a precondition that stopped holding since the approval (a
withdrawn change record, evidence that turned red) blocks at once. Status precedence:
rejected > expired > blocked > pending > approved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from approvals.models import ApprovalRequest, ApprovalStage, Evidence, Release
from governance.policy import EvidenceRequirement, Plan


@dataclass
class GateResult:
    status: str
    reasons: list[str] = field(default_factory=list)
    stages: list[dict] = field(default_factory=list)
    digest: str = ""

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "reasons": self.reasons,
            "stages": self.stages,
            "digest": self.digest,
        }


def evaluate_gate(
    release: Release, *, digest: str | None = None, now: datetime | None = None
) -> GateResult:
    """Evaluate the gate for a release loaded with `Release.objects.for_gate()`."""
    now = now or timezone.now()
    approval: ApprovalRequest = release.approval
    stages = list(approval.stages.all())
    result = GateResult(
        status="approved", stages=[_stage_view(s) for s in stages], digest=release.digest
    )
    if approval.status == ApprovalRequest.Status.REJECTED:
        result.status = "rejected"
        result.reasons = _rejection_reasons(stages)
        return result
    expiry = _expiry_reason(approval, now)
    if expiry:
        result.status, result.reasons = "expired", [expiry]
        return result
    blockers = precondition_failures(
        release, Plan.from_dict(approval.plan), list(release.evidence.all())
    )
    if digest is not None and digest != release.digest:
        blockers.insert(
            0,
            f"Digest {digest} is not the approved artifact ({release.digest}); "
            "a different digest needs a new approval request.",
        )
    if blockers:
        result.status, result.reasons = "blocked", blockers
        return result
    if approval.status == ApprovalRequest.Status.PENDING:
        result.status = "pending"
        result.reasons = [
            _waiting_reason(s) for s in stages if s.status == ApprovalStage.Status.ACTIVE
        ]
        return result
    result.reasons = [
        f"Approved; valid until {approval.valid_until:%Y-%m-%d %H:%M} UTC."
        if approval.valid_until
        else "Approved."
    ]
    return result


def precondition_failures(release: Release, plan: Plan, evidence: list[Evidence]) -> list[str]:
    """Everything that must hold at deploy time, in words a person can act on."""
    failures = list(plan.errors)
    if not release.change.is_approvable:
        failures.append(
            f"Change record {release.change.ref} is {release.change.get_state_display().lower()}; "
            "it must be open or approved."
        )
    latest = {item.kind: item for item in evidence}
    for requirement in plan.evidence:
        problem = _evidence_problem(requirement, latest.get(requirement.kind))
        if problem:
            failures.append(problem)
    return failures


def _evidence_problem(requirement: EvidenceRequirement, item: Evidence | None) -> str | None:
    if item is None:
        return f"Missing required evidence: {requirement.describe()}."
    if item.status != requirement.status:
        return (
            f"Evidence '{item.kind}' is '{item.status}'; "
            f"the policy requires '{requirement.status}'."
        )
    if requirement.max_failed is not None:
        failed = item.failed_count
        if failed is None:
            return (
                f"Evidence '{item.kind}' does not report a 'failed' count; the policy requires one."
            )
        if failed > requirement.max_failed:
            return (
                f"Evidence '{item.kind}' reports {failed} failed; "
                f"at most {requirement.max_failed} allowed."
            )
    return None


def _expiry_reason(approval: ApprovalRequest, now: datetime) -> str | None:
    if approval.status == ApprovalRequest.Status.EXPIRED:
        return "The approval request expired; request a new approval."
    if approval.status == ApprovalRequest.Status.PENDING and approval.expires_at <= now:
        return f"No decision before {approval.expires_at:%Y-%m-%d %H:%M} UTC; the request expired."
    if (
        approval.status == ApprovalRequest.Status.APPROVED
        and approval.valid_until
        and approval.valid_until <= now
    ):
        return (
            f"The approval was valid until {approval.valid_until:%Y-%m-%d %H:%M} UTC; "
            "request a new approval."
        )
    return None


def _rejection_reasons(stages: list[ApprovalStage]) -> list[str]:
    return [
        f"Rejected by {d.approver.username} at {d.created_at:%Y-%m-%d %H:%M} UTC "
        f"({stage.name}): {d.rationale}"
        for stage in stages
        for d in stage.decisions.all()
        if d.verdict == "reject"
    ]


def _waiting_reason(stage: ApprovalStage) -> str:
    names = sorted(u.username for u in stage.eligible_approvers.all())
    who = ", ".join(names) if names else "nobody is eligible; ask an administrator"
    due = f", due {stage.due_at:%Y-%m-%d %H:%M} UTC" if stage.due_at else ""
    return (
        f"Waiting for {stage.name}: {stage.approval_count} of {stage.required_count} "
        f"approvals (eligible: {who}{due})."
    )


def _stage_view(stage: ApprovalStage) -> dict:
    return {
        "name": stage.name,
        "status": stage.status,
        "required": stage.required_count,
        "approvals": [
            {"user": d.approver.username, "at": d.created_at.isoformat()}
            for d in stage.decisions.all()
            if d.verdict == "approve"
        ],
    }

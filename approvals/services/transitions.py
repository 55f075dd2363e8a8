"""Moving a request along: opening the next stage, changing its status, telling people.

Shared by the request, decision and sweep services; each calls these inside its own
transaction.
"""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse

from approvals.announcements import announce
from approvals.emergencies.monitoring import announce_enhanced_monitoring
from approvals.models import ApprovalRequest, ApprovalStage, Decision, Release
from approvals.pipelines.answers import answer_release
from changes.records.services import ReleaseProgress, follow_releases
from governance.ledger import services as ledger
from governance.models import Delegation, User
from governance.notifications.services import notify, route
from governance.policy.engine import Plan


def advance(approval: ApprovalRequest, actor: User | None, now) -> None:
    """Open the next group of waiting stages (those sharing the lowest `order` run in
    parallel), once no stage is open; approve the request when none is left."""
    plan = Plan.from_dict(approval.plan)
    open_or_waiting = list(
        approval.stages.filter(
            status__in=[ApprovalStage.Status.WAITING, ApprovalStage.Status.ACTIVE]
        ).order_by("order", "position")
    )
    if any(stage.status == ApprovalStage.Status.ACTIVE for stage in open_or_waiting):
        return  # a parallel stage is still open: the group is complete when it is
    if open_or_waiting:
        group = [s for s in open_or_waiting if s.order == open_or_waiting[0].order]
        for stage in group:
            _open(stage, plan, now)
            _announce(approval, stage, now)
        return
    if plan.errors or plan.blocks:
        return  # Nothing to approve until the policy problem is fixed; the gate says why.
    valid_until = (
        now + timedelta(hours=plan.approval_valid_hours) if plan.approval_valid_hours else None
    )
    transition(approval, ApprovalRequest.Status.APPROVED, actor, now, valid_until=valid_until)
    announce_enhanced_monitoring(approval.release, moment="approved")


def _open(stage: ApprovalStage, plan: Plan, now) -> None:
    """Open `stage` now, with its due time and when the sweeps remind and escalate it."""
    requirement = next((s for s in plan.stages if s.key == stage.key), None)
    remind = requirement.reminder_delay() if requirement else None
    escalate = requirement.escalation_delay() if requirement else None
    stage.due_at = now + timedelta(hours=stage.sla_hours) if stage.sla_hours else None
    stage.remind_at = now + remind if remind else None
    stage.escalate_at = now + escalate if escalate else None
    ApprovalStage.objects.filter(pk=stage.pk).update(
        status=ApprovalStage.Status.ACTIVE,
        activated_at=now,
        due_at=stage.due_at,
        remind_at=stage.remind_at,
        escalate_at=stage.escalate_at,
    )


def _announce(approval: ApprovalRequest, stage: ApprovalStage, now) -> None:
    """Tell the people who can decide the newly opened stage, those at work first.

    Someone away with a delegation in force is represented by their delegate.
    """
    release = approval.release
    people = {u.pk: u for u in stage.eligible_approvers.all()}
    for delegation in (
        Delegation.objects.in_force(now)
        .covering(release.service)
        .filter(delegator__in=list(people))
        .select_related("delegate")
    ):
        people.pop(delegation.delegator_id, None)
        people[delegation.delegate_id] = delegation.delegate
    recipients, reason = route(people.values(), now)
    due = f" It is due {stage.due_at:%Y-%m-%d %H:%M} UTC." if stage.due_at else ""
    notify(
        people=recipients,
        subject=f"Approval needed: {release} ({stage.name})",
        body=f"{release.service.name} {release.version} is waiting for {stage.name} "
        f"({stage.required_count} distinct approval(s)). Change {release.change.ref}: "
        f"{release.change.title}.{due}",
        url=reverse("approvals:release_detail", args=[release.pk]),
        reason=reason,
    )


def transition(approval: ApprovalRequest, status: str, actor: User | None, now, **fields) -> None:
    """Change the request's status (with `fields`, datetimes), ledger it, tell the requester."""
    previous = approval.status
    ApprovalRequest.objects.filter(pk=approval.pk).update(status=status, decided_at=now, **fields)
    approval.status = status
    for name, value in fields.items():
        setattr(approval, name, value)
    ledger.append(
        kind="gate.transition",
        subject=f"release:{approval.release_id}",
        actor=actor.username if actor else "system",
        payload={
            "from": previous,
            "to": status,
            **{k: v.isoformat() if v else None for k, v in fields.items()},
        },
    )
    _tell_requester(approval, status, actor)
    follow_change(approval.release, actor)
    # Pipeline runs waiting on this release hear the outcome (when the gate agrees it is one).
    answer_release(approval.release_id, now)
    if status in OUTCOME_WORDS:
        release = approval.release
        announce(
            release,
            "decided",
            f"{OUTCOME_WORDS[status]}: {release} ({release.change.ref})"
            + (f" by {actor.username}" if actor else ""),
            status=status,
            decided_by=actor.username if actor else "system",
        )


def follow_change(release: Release, actor: User | None) -> None:
    """Move the release's change record to where all its linked releases now stand."""
    rows = Release.objects.filter(change_id=release.change_id).values_list(
        "pk", "approval__status", "deployed_at"
    )
    follow_releases(
        change=release.change,
        releases=[
            ReleaseProgress(
                release_id=pk, status=status or "pending", deployed=deployed is not None
            )
            for pk, status, deployed in rows
        ],
        actor=actor,
    )


OUTCOME_WORDS = {
    ApprovalRequest.Status.APPROVED: "Approved",
    ApprovalRequest.Status.REJECTED: "Rejected",
    ApprovalRequest.Status.EXPIRED: "Expired",
    ApprovalRequest.Status.WITHDRAWN: "Withdrawn",
}


def _tell_requester(approval: ApprovalRequest, status: str, actor: User | None) -> None:
    """The people who asked (the requester and whoever triggered the pipeline) hear the outcome,
    whatever the hour: they are waiting for it."""
    release = Release.objects.select_related(
        "service", "environment", "requested_by", "triggered_by"
    ).get(pk=approval.release_id)
    people = {p.pk: p for p in (release.requested_by, release.triggered_by) if p}
    if actor is not None:
        people.pop(actor.pk, None)  # whoever closed it knows
    if status == ApprovalRequest.Status.APPROVED:
        detail = "Every stage is approved; the gate answers 'approved' while preconditions hold."
    elif status == ApprovalRequest.Status.REJECTED:
        rejection = approval.decisions.filter(verdict=Decision.Verdict.REJECT).last()
        detail = f"Rejected by {actor}: {rejection.rationale}" if rejection else "Rejected."
    elif status == ApprovalRequest.Status.WITHDRAWN:
        detail = f"Withdrawn by {actor}: {approval.withdrawal_reason}"
    else:
        detail = "Nobody decided in time; request a new approval to deploy it."
    notify(
        people=[p for p in people.values() if not p.is_service_account],
        subject=f"{OUTCOME_WORDS[status]}: {release}",
        body=f"{release.service.name} {release.version} to {release.environment.name}: {detail}",
        url=reverse("approvals:release_detail", args=[release.pk]),
        reason="you requested this release",
    )

"""Who may decide which stage of a release now, and for whom. Reads only.

One function answers it for every path (the release page, the queue's promise, the decision
service), so the segregation-of-duties rules cannot drift apart between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from approvals.models import ApprovalRequest, ApprovalStage, Release
from governance.authority.selectors import has_stage_authority, is_auditor
from governance.models import Delegation, User


@dataclass(frozen=True)
class Capacity:
    """The stage a person may decide now and on whose behalf (None: their own), or why not."""

    stage: ApprovalStage | None = None
    on_behalf_of: User | None = None
    blocker: str | None = None


def decision_capacity(
    release: Release, approval: ApprovalRequest, user: User, now: datetime | None = None
) -> Capacity:
    """In which capacity `user` may decide `approval` now. Stages must be prefetched with
    their decisions and eligible approvers."""
    now = now or timezone.now()
    refusal = _request_refusal(release, approval, user, now)
    if refusal:
        return Capacity(blocker=refusal)
    stages = list(approval.stages.all())
    # Stages sharing an `order` are open at once: the first, by position, that `user` may
    # decide (as themselves, else for someone who delegated to them) is theirs to decide.
    open_stages = [s for s in stages if s.status == ApprovalStage.Status.ACTIVE]
    if not open_stages:
        return Capacity(blocker="No stage is open for decisions.")
    counted = _people_counted(stages)
    refusals = []
    for active in open_stages:
        if _is_eligible(active, user, release):
            capacity = _own_capacity(approval, active, user, counted)
            if not capacity.blocker:
                return capacity
            refusals.append(capacity)
    for active in open_stages:
        delegated = _delegated_capacity(release, approval, active, user, counted, now)
        if delegated and not delegated.blocker:
            return delegated
        if delegated:
            refusals.append(delegated)
    if refusals:
        return refusals[0]
    names = " or ".join(s.name for s in open_stages)
    waiting = next(
        (
            s
            for s in stages
            if s.status == ApprovalStage.Status.WAITING and _is_eligible(s, user, release)
        ),
        None,
    )
    if waiting:
        return Capacity(blocker=f"{waiting.name} opens after {names} is complete.")
    return Capacity(blocker=f"You are not an eligible approver for {names}.")


def _request_refusal(
    release: Release, approval: ApprovalRequest, user: User, now: datetime
) -> str | None:
    if user.pk in release.conflicted_user_ids():
        return (
            "You requested this release, triggered its pipeline or wrote its change record; "
            "someone else must approve it."
        )
    if user.is_service_account:
        return "Service accounts request releases; only people approve them."
    if is_auditor(user):
        return (
            "You hold the auditor role: auditors are independent and decide nothing, "
            "on their own authority or as anyone's delegate."
        )
    if approval.status != ApprovalRequest.Status.PENDING:
        return f"This request is {approval.get_status_display().lower()}; no more decisions."
    if approval.expires_at <= now:
        return "This request expired undecided; a new approval request is needed."
    return None


def _people_counted(stages: list[ApprovalStage]) -> dict[int, set[int]]:
    """Per stage, everyone already counted there: who decided and on whose behalf."""
    return {
        stage.pk: {
            person
            for d in stage.decisions.all()
            for person in (d.approver_id, d.on_behalf_of_id)
            if person is not None
        }
        for stage in stages
    }


def _own_capacity(
    approval: ApprovalRequest, active: ApprovalStage, user: User, counted: dict[int, set[int]]
) -> Capacity:
    if user.pk in counted[active.pk]:
        return Capacity(
            blocker=f"You have already decided {active.name}; it needs distinct approvers."
        )
    if approval.dual_control and _counted_elsewhere(counted, active, {user.pk}):
        return Capacity(
            blocker="Dual control: you already decided another stage of this request; "
            "one person counts in one stage only."
        )
    return Capacity(stage=active)


def _delegated_capacity(
    release: Release,
    approval: ApprovalRequest,
    active: ApprovalStage,
    user: User,
    counted: dict[int, set[int]],
    now: datetime,
) -> Capacity | None:
    """Acting for someone who delegated to `user`: only on that person's own authority."""
    conflicted = release.conflicted_user_ids()
    delegations = (
        Delegation.objects.in_force(now)
        .covering(release.service)
        .lent_to(user)
        # Saves a query per delegation, nothing more: without it (a mutant mutation testing keeps
        # alive) every answer is the same. Equivalent, so not a gap in the tests.
        .select_related("delegator")
        .order_by("delegator__username")
    )
    for delegation in delegations:
        principal = delegation.delegator
        if principal.pk in conflicted or not _is_eligible(active, principal, release):
            continue
        people = {user.pk, principal.pk}
        if people & counted[active.pk]:
            return Capacity(
                blocker=f"You or {principal.username} have already been counted in {active.name}."
            )
        if approval.dual_control and _counted_elsewhere(counted, active, people):
            return Capacity(
                blocker=f"Dual control: you or {principal.username} already decided another "
                "stage of this request; one person counts in one stage only."
            )
        if not _in_required_teams(active, user, release):
            return Capacity(
                blocker=f"{active.name} is decided by the service's owning teams, and you are "
                f"not in one, so you cannot act for {principal.username} here."
            )
        return Capacity(stage=active, on_behalf_of=principal)
    return None


def _counted_elsewhere(
    counted: dict[int, set[int]], active: ApprovalStage, people: set[int]
) -> bool:
    return any(people & ids for stage_id, ids in counted.items() if stage_id != active.pk)


def _in_required_teams(stage: ApprovalStage, user: User, release: Release) -> bool:
    """When the policy names the owning teams, whether `user` belongs to one that counts now
    (the approver, and a delegate as well as the person they act for)."""
    if not stage.team_rule:
        return True
    teams = release.service.owning_teams()
    allowed = teams[:1] if stage.team_rule == "primary" else teams
    return user.teams.filter(pk__in=[t.pk for t in allowed]).exists()


def _is_eligible(stage: ApprovalStage, user: User, release: Release) -> bool:
    """In the stage's frozen list of approvers and still holding that authority right now:
    under a team rule, still in an owning team that counts (the list is re-resolved only
    every few minutes); or, once the stage is escalated, holding the CAB role."""
    if not any(u.pk == user.pk for u in stage.eligible_approvers.all()):
        return False
    service, environment = release.service, release.environment
    if has_stage_authority(user, service, stage.approvers, environment) and _in_required_teams(
        stage, user, release
    ):
        return True
    # Overdue and escalated: the CAB's members decide it too, on the CAB's authority (which
    # answers to no team rule); every other rule (distinct people, dual control) still holds.
    return stage.escalated_at is not None and has_stage_authority(user, service, "cab", environment)

"""Invariant 18 and its neighbours for what measuring records: nobody closes out their own act.

An alert about a person (or their team) is acknowledged by someone else, holding the security
approver or administrator role on everything and no auditor role; a quarterly review item's outcome
is recorded by an administrator or CAB member who is not an auditor and had no part in the act (the
people of the act are read here from the act itself, not from what the review noted); only a
release's requester rates its workflow, and only once the request has ended. Each of these acts
has its ledger entry.
"""

from __future__ import annotations

from approvals.emergencies.models import EmergencyException
from approvals.models import ApprovalRequest, Deployment, Release
from changes.freezes.models import FreezeOverride
from changes.reviews.models import Review
from governance.models import LedgerEntry, Role
from reporting.anomalies.models import AnomalyAlert
from reporting.reviews.models import QuarterlyReviewItem, WorkflowFeedback
from tests.invariants.checks import Record, Requests, require
from tests.invariants.oracle import World

Kind = QuarterlyReviewItem.Kind


def check_measuring(world: World, record: Record, requests: Requests) -> None:
    check_acknowledgements(world, record)
    check_review_outcomes(world, record)
    check_feedback(record, requests)


def _everywhere(world: World, person: int, role: str) -> bool:
    grants = world.grants_of(person, role, world.now)
    return any(g.service_id is None and g.team_id is None for g in grants)


def _ledgered(kind: str, subject: str, actor: str) -> bool:
    return LedgerEntry.objects.filter(kind=kind, subject=subject, actor=actor).exists()


def check_acknowledgements(world: World, record: Record) -> None:
    """Alerts acknowledged since the last step: by whom, and ledgered."""
    acknowledged = AnomalyAlert.objects.filter(status="acknowledged").exclude(
        pk__in=record.seen_acknowledged
    )
    for alert in acknowledged:
        who = alert.acknowledged_by_id
        name = world.users[who].username
        about = {alert.person_id, alert.counterpart_id}
        require(who not in about, 18, f"{name} acknowledged alert #{alert.pk} about themselves")
        if alert.team_id is not None:
            require(
                who not in world.members.get(alert.team_id, set()),
                18,
                f"{name} acknowledged alert #{alert.pk} about their own team",
            )
        require(not world.is_auditor(who, world.now), 9, f"auditor {name} acknowledged an alert")
        require(
            world.is_administrator(who, world.now)
            or _everywhere(world, who, Role.SECURITY_APPROVER),
            4,
            f"{name} acknowledged alert #{alert.pk} without the authority to",
        )
        require(
            _ledgered("anomaly.acknowledged", f"anomaly:{alert.pk}", name),
            11,
            f"alert #{alert.pk} acknowledged without a ledger entry",
        )
        record.seen_acknowledged.add(alert.pk)


def check_review_outcomes(world: World, record: Record) -> None:
    """Review items given an outcome since the last step: by whom, and ledgered."""
    decided = QuarterlyReviewItem.objects.exclude(outcome="pending").exclude(
        pk__in=record.seen_outcomes
    )
    for item in decided:
        who = item.decided_by_id
        name = world.users[who].username
        require(
            who not in people_of(item),
            18,
            f"{name} recorded the outcome of their own act ({item.label})",
        )
        require(not world.is_auditor(who, world.now), 9, f"auditor {name} recorded an outcome")
        require(
            world.is_administrator(who, world.now)
            or bool(world.grants_of(who, Role.CAB_MEMBER, world.now)),
            4,
            f"{name} recorded an outcome without the authority to",
        )
        require(
            _ledgered(
                "quarterly_review.outcome_recorded", f"quarterly_review:{item.review_id}", name
            ),
            11,
            f"the outcome of {item.label} has no ledger entry",
        )
        record.seen_outcomes.add(item.pk)


def people_of(item: QuarterlyReviewItem) -> set[int]:
    """Who took part in the act an item is about, read from the act itself."""
    if item.kind == Kind.EMERGENCY:
        emergency = EmergencyException.objects.select_related("change").get(pk=item.source_id)
        return {emergency.declared_by_id, emergency.change.author_id}
    if item.kind == Kind.FREEZE_OVERRIDE:
        override = FreezeOverride.objects.get(pk=item.source_id)
        release = Release.objects.filter(pk=override.release_id).first()
        people = {override.requested_by_id, override.confirmed_by_id}
        if release is not None:
            people |= {release.requested_by_id, release.triggered_by_id}
        return people
    if item.kind == Kind.LATE_POST_MORTEM:
        review = Review.objects.select_related("change").get(pk=item.source_id)
        emergency = EmergencyException.objects.filter(change=review.change).first()
        return {review.change.author_id, emergency.declared_by_id if emergency else None}
    release = Release.objects.get(pk=item.source_id)
    deployers = Deployment.objects.filter(release=release, approved=False)
    return {
        release.requested_by_id,
        release.triggered_by_id,
        *deployers.values_list("reported_by_id", flat=True),
    }


def check_feedback(record: Record, requests: Requests) -> None:
    """Ratings given or changed since the last step: only by the requester, only once the
    request had ended, each with its ledger entry."""
    for feedback in WorkflowFeedback.objects.all():
        seen = (feedback.pk, feedback.updated_at)
        if seen in record.seen_ratings:
            continue
        release = requests.releases[feedback.release_id]
        requester = release.triggered_by_id or release.requested_by_id
        require(
            feedback.rated_by_id == requester,
            18,
            f"release #{release.pk}'s workflow rated by someone other than its requester",
        )
        require(
            release.approval.status != ApprovalRequest.Status.PENDING,
            18,
            f"release #{release.pk}'s workflow rated while its request is pending",
        )
        entries = LedgerEntry.objects.filter(
            kind__in=("workflow_feedback.given", "workflow_feedback.changed"),
            subject=f"workflow_feedback:{release.pk}",
        ).count()
        record.rating_changes[release.pk] = record.rating_changes.get(release.pk, 0) + 1
        require(
            entries == record.rating_changes[release.pk],
            11,
            f"release #{release.pk} rated {record.rating_changes[release.pk]} time(s), "
            f"{entries} ledger entries",
        )
        record.seen_ratings.add(seen)

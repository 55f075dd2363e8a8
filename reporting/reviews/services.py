"""The quarterly review's and workflow feedback's state changes, each ledgered.

Who does what:
- the review of a quarter is started by Celery beat on the next quarter's first day, or by an
  administrator's button; starting it again finds the same review;
- administrators and CAB members record an outcome per item, never on their own act (their own
  emergency, exception or deployment: segregation of duties), and never while holding the
  auditor role (auditors read, they decide nothing);
- the review closes by itself when its last item gets an outcome, or when an administrator
  closes it with items still open, which the closing names;
- a release's requester rates its approval workflow once it has ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dateutil.relativedelta import relativedelta
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from approvals.models import ApprovalRequest, Release
from governance.authority.models import RoleAssignment
from governance.authority.selectors import administrators, roles_in_force
from governance.authority.services import is_administrator
from governance.exceptions import GovernanceError, PermissionDenied
from governance.ledger import services as ledger
from governance.models import Role, User
from governance.notifications.services import notify
from reporting.reviews.findings import quarter_items
from reporting.reviews.models import (
    QuarterlyReview,
    QuarterlyReviewItem,
    WorkflowFeedback,
    quarter_label,
)

REVIEW_PERIOD = timedelta(days=30)
Outcome = QuarterlyReviewItem.Outcome


class InvalidReview(GovernanceError):
    code = "invalid_review"


class ReviewConflict(GovernanceError):
    """Someone else recorded it first, or the review was closed meanwhile."""

    code = "review_conflict"
    status = 409


# --- Who may do what ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """What one person may do with quarterly reviews, read once per request (two queries)."""

    administrator: bool
    roles: frozenset[str]

    @property
    def reads(self) -> bool:
        """Administrators, CAB members and auditors (any grant in force)."""
        return self.administrator or bool({Role.CAB_MEMBER, Role.AUDITOR} & self.roles)

    @property
    def records(self) -> bool:
        """Administrators and CAB members who are not auditors: auditors never decide."""
        if Role.AUDITOR in self.roles:
            return False
        return self.administrator or Role.CAB_MEMBER in self.roles


def access_of(user: User) -> Access:
    if not user.is_authenticated or not user.is_active:
        return Access(administrator=False, roles=frozenset())
    return Access(administrator=is_administrator(user), roles=frozenset(roles_in_force(user)))


def own_act_refusal(user: User, item: QuarterlyReviewItem) -> str | None:
    """Why `user` may not record `item`'s outcome on account of it being their own act."""
    if user.pk in item.involved:
        return "Nobody records the outcome of their own act; another reviewer does."
    return None


def mark_recordable(
    user: User, access: Access, items: list[QuarterlyReviewItem], review: QuarterlyReview
) -> list[QuarterlyReviewItem]:
    """Set `can_record` and `own_act` on each item for the page, without a query."""
    allowed = not review.is_closed and access.records
    for item in items:
        item.own_act = own_act_refusal(user, item) is not None
        item.can_record = allowed and item.is_pending and not item.own_act
    return items


# --- Quarters -------------------------------------------------------------------------------------


def quarter_start(day: date) -> date:
    return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)


def previous_quarter(day: date) -> date:
    """The first day of the last quarter that has ended by `day`."""
    return quarter_start(day) - relativedelta(months=3)


# --- Starting, recording, closing -----------------------------------------------------------------


def start_quarterly_review(
    *, actor: User | None, quarter: date | None = None, now: datetime | None = None
) -> tuple[QuarterlyReview, bool]:
    """Open the review of `quarter` (by default the last one ended); (review, created).

    Starting a quarter's review again, by beat and button or by two administrators at once,
    returns the review already there: the quarter is unique, and the loser of a race reads
    the winner's review.
    """
    if actor is not None and not is_administrator(actor):
        raise PermissionDenied("Only administrators can start a quarterly review.")
    now = now or timezone.now()
    first_day = quarter_start(quarter) if quarter else previous_quarter(now.date())
    existing = QuarterlyReview.objects.filter(quarter_start=first_day).first()
    if existing is not None:
        return existing, False
    review = QuarterlyReview(quarter_start=first_day, started_by=actor, started_at=now)
    if review.period[1] > now:
        raise InvalidReview(f"{quarter_label(first_day)} has not ended yet.")
    try:
        with transaction.atomic():
            _create(review, now)
    except IntegrityError:
        return QuarterlyReview.objects.get(quarter_start=first_day), False
    return review, True


def _create(review: QuarterlyReview, now: datetime) -> None:
    review.due_at = now + REVIEW_PERIOD
    review.save()
    items = quarter_items(*review.period)
    for item in items:
        item.review = review
    QuarterlyReviewItem.objects.bulk_create(items)
    counts = {kind: sum(1 for i in items if i.kind == kind) for kind in QuarterlyReviewItem.Kind}
    _announce(review, len(items))
    ledger.append(
        kind="quarterly_review.started",
        subject=f"quarterly_review:{review.pk}",
        actor=review.started_by.username if review.started_by else "system",
        payload={"quarter": quarter_label(review.quarter_start), "items": counts},
    )


def _announce(review: QuarterlyReview, items: int) -> None:
    """Tell the administrators and the CAB that a review waits for them (after commit)."""
    cab = RoleAssignment.objects.filter(role=Role.CAB_MEMBER).exclude(
        expires_at__lte=timezone.now()
    )
    people = administrators() | User.objects.filter(is_active=True, pk__in=cab.values("user_id"))
    if review.started_by is not None:
        people = people.exclude(pk=review.started_by.pk)
    notify(
        people=people.distinct(),
        subject=f"{review.name} is open: {items} item{'s' if items != 1 else ''} to review",
        body=(
            f"The quarter's policy exceptions, emergency bypasses, overdue post-mortems and "
            f"unapproved deployments wait for an outcome, due {review.due_at:%Y-%m-%d}."
        ),
        url=reverse("reporting:quarterly_detail", args=[review.pk]),
        reason="administrator or CAB member",
    )


def record_outcome(
    *, item: QuarterlyReviewItem, outcome: str, note: str, actor: User
) -> QuarterlyReviewItem:
    """Record what the review concluded about one item; closes the review after its last one."""
    note = note.strip()
    _check_outcome(outcome, note)
    if not access_of(actor).records:
        raise PermissionDenied("Only administrators and CAB members record outcomes.")
    refusal = own_act_refusal(actor, item)
    if refusal:
        raise PermissionDenied(refusal)
    with transaction.atomic():
        locked = _lock_pending(item)
        locked.outcome, locked.note = outcome, note
        locked.decided_by, locked.decided_at = actor, timezone.now()
        locked.save(update_fields=["outcome", "note", "decided_by", "decided_at"])
        ledger.append(
            kind="quarterly_review.outcome_recorded",
            subject=f"quarterly_review:{locked.review_id}",
            actor=actor.username,
            payload={"item": locked.label, "kind": locked.kind, "outcome": outcome, "note": note},
        )
        if not locked.review.items.filter(outcome=Outcome.PENDING).exists():
            _close(locked.review, actor, note="Every item has an outcome.", left_open=[])
    return locked


def _check_outcome(outcome: str, note: str) -> None:
    if outcome not in Outcome.values or outcome == Outcome.PENDING:
        raise InvalidReview(
            "Choose accepted, follow-up required or control changed.",
            fields={"outcome": ["Choose an outcome."]},
        )
    if outcome in QuarterlyReviewItem.NOTE_REQUIRED and not note:
        label = Outcome(outcome).label.lower()
        raise InvalidReview(
            f"Say what the {label} is in the note.", fields={"note": ["Required for this outcome."]}
        )


def _lock_pending(item: QuarterlyReviewItem) -> QuarterlyReviewItem:
    """The item and its review locked; refused if it was recorded or the review closed meanwhile."""
    locked = (
        QuarterlyReviewItem.objects.select_for_update(of=("self", "review"))
        .select_related("review")
        .get(pk=item.pk)
    )
    if locked.review.is_closed:
        raise ReviewConflict("This review is closed. Nothing was recorded.")
    if not locked.is_pending:
        who = locked.decided_by.username if locked.decided_by else "someone"
        raise ReviewConflict(f"{who} already recorded this item's outcome. Nothing was recorded.")
    return locked


def close_review(*, review: QuarterlyReview, note: str, actor: User) -> QuarterlyReview:
    """An administrator closes the review; items still open are named in the closing."""
    if not is_administrator(actor):
        raise PermissionDenied("Only administrators close a quarterly review.")
    note = note.strip()
    if not note:
        raise InvalidReview(
            "Say why the review closes with items open.", fields={"note": ["Required."]}
        )
    with transaction.atomic():
        locked = QuarterlyReview.objects.select_for_update().get(pk=review.pk)
        if locked.is_closed:
            raise ReviewConflict("This review is already closed.")
        open_items = locked.items.filter(outcome=Outcome.PENDING).order_by("kind", "pk")
        _close(locked, actor, note=note, left_open=[item.label for item in open_items])
    return locked


def _close(review: QuarterlyReview, actor: User, *, note: str, left_open: list[str]) -> None:
    review.closed_at, review.closed_by = timezone.now(), actor
    review.closing_note, review.left_open = note, left_open
    review.save(update_fields=["closed_at", "closed_by", "closing_note", "left_open"])
    ledger.append(
        kind="quarterly_review.closed",
        subject=f"quarterly_review:{review.pk}",
        actor=actor.username,
        payload={"note": note, "left_open": left_open},
    )


# --- Workflow feedback ----------------------------------------------------------------------------


def requester_of(release: Release) -> int:
    """The person behind the request: who triggered the pipeline when known, else who asked."""
    return release.triggered_by_id or release.requested_by_id


def feedback_refusal(user: User, release: Release) -> str | None:
    """Why `user` may not rate `release`'s workflow now, or None."""
    if user.pk != requester_of(release):
        return "Only the release's requester rates its workflow."
    # A pending request is not over: its workflow cannot be judged yet. Every other state is an
    # end (approved, rejected, expired, withdrawn), and each says something about the rules.
    if release.approval.status == ApprovalRequest.Status.PENDING:
        return "The workflow can be rated once the approval request has ended."
    return None


def give_feedback(*, release: Release, rating: str, comment: str, actor: User) -> WorkflowFeedback:
    """Rate (or re-rate) the workflow of `release`: useful or noise, with an optional comment."""
    comment = comment.strip()
    if rating not in WorkflowFeedback.Rating.values:
        raise InvalidReview("Choose useful or noise.", fields={"rating": ["Choose one."]})
    now = timezone.now()
    with transaction.atomic():
        # Read afresh: the caller's copy may predate the decision that ended the request.
        release = Release.objects.select_related("approval").get(pk=release.pk)
        refusal = feedback_refusal(actor, release)
        if refusal:
            raise PermissionDenied(refusal)
        feedback, created = WorkflowFeedback.objects.select_for_update().get_or_create(
            release=release,
            defaults={"rated_by": actor, "rating": rating, "comment": comment, "created_at": now},
        )
        feedback.rating, feedback.comment, feedback.updated_at = rating, comment, now
        feedback.save(update_fields=["rating", "comment", "updated_at"])
        ledger.append(
            kind="workflow_feedback.given" if created else "workflow_feedback.changed",
            subject=f"workflow_feedback:{release.pk}",
            actor=actor.username,
            payload={"release": release.pk, "rating": rating, "comment": comment},
        )
    return feedback

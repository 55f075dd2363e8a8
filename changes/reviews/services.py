"""The life of a review: opened by Signoff, completed by an owner, chased when it is late.

Every write here is ledgered inside its own transaction (subject `review:<pk>`), and people are
told through the notification outbox, so a worker or a mail outage loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from changes.cab import services as cab
from changes.cab.models import AgendaItem
from changes.records.models import ChangeRecord
from changes.reviews.exceptions import InvalidReview, ReviewConflict, ReviewForbidden
from changes.reviews.models import Review, ReviewAction
from governance.authority.selectors import eligible_approvers
from governance.ledger import services as ledger
from governance.models import Service, User
from governance.notifications.services import notify, route

REMIND_BEFORE = timedelta(hours=24)
CHASE_BATCH = 200
AGENDA_KIND = {
    Review.Kind.POST_MORTEM: AgendaItem.Kind.POST_MORTEM,
    Review.Kind.POST_IMPLEMENTATION: AgendaItem.Kind.POST_IMPLEMENTATION_REVIEW,
}


def review_url(review: Review) -> str:
    # A plain path: notifications are written inside transactions that may run in workers.
    return f"/changes/reviews/{review.pk}/"


def pir_due_at(opened_at: datetime) -> datetime:
    """When a post-implementation review opened at `opened_at` is due (settings)."""
    return opened_at + timedelta(hours=settings.SIGNOFF_REVIEW_DUE_HOURS)


@dataclass(frozen=True)
class ReviewOpening:
    """What opens a review: its kind and cause, the change and service, and why in words."""

    kind: str
    trigger: str
    change: ChangeRecord
    service: Service
    summary: str
    release_id: int | None = None
    due_at: datetime | None = None  # None: a post-implementation review's default
    declared_by: User | None = None  # who declared the emergency the change holds


def open_review(
    *, opening: ReviewOpening, actor: User | None, now: datetime | None = None
) -> tuple[Review, bool]:
    """Open a review unless the same one exists; returns (review, opened now).

    Idempotent: a second report of the same failure, or a second deployment of an emergency
    change, meets the unique constraints and returns the review already open. The service's
    owners are told (routed to those in working hours first).
    """
    now = now or timezone.now()
    existing = _same_review(opening)
    if existing is not None:
        return existing, False
    if opening.due_at is None and opening.kind == Review.Kind.POST_MORTEM:
        raise InvalidReview("A post-mortem needs a due time from the emergency policy.")
    try:
        # A savepoint: the caller's transaction (a deployment report) must survive a lost race.
        with transaction.atomic():
            review = Review.objects.create(
                kind=opening.kind,
                trigger=opening.trigger,
                change=opening.change,
                service=opening.service,
                release_id=opening.release_id,
                summary=opening.summary,
                declared_by=opening.declared_by,
                opened_at=now,
                due_at=opening.due_at or pir_due_at(now),
            )
            _ledger(review, "review.opened", actor, summary=review.summary, due_at=review.due_at)
    except IntegrityError:
        return _same_review(opening), False
    _tell(
        _owners(review.service),
        now,
        subject=f"{review.get_kind_display()} due: {review.change.ref}",
        body=f"{review.summary} It is due by {review.due_at:%Y-%m-%d %H:%M} UTC; an owner of "
        f"{review.service.name} completes it.",
        review=review,
        reason="review opened",
    )
    return review, True


def _same_review(opening: ReviewOpening) -> Review | None:
    reviews = Review.objects.select_related("change", "service")
    if opening.kind == Review.Kind.POST_MORTEM:
        return reviews.filter(change=opening.change, kind=opening.kind).first()
    if opening.release_id is None:
        return None
    return reviews.filter(
        release_id=opening.release_id, kind=opening.kind, trigger=opening.trigger
    ).first()


def may_complete(user: User, review: Review) -> bool:
    """Whether `user` may complete `review`: an active owner of its service who did not write
    the change it is about nor declare its emergency."""
    return (
        user.is_authenticated
        and user.is_active
        and user.pk != review.change.author_id
        and user.pk != review.declared_by_id
        and review.service.owners.filter(pk=user.pk).exists()
    )


def may_manage_actions(user: User, review: Review) -> bool:
    """Owners of the review's service add actions and mark any of them done."""
    return user.is_authenticated and review.service.owners.filter(pk=user.pk).exists()


def complete_review(
    *,
    review: Review,
    actor: User,
    what_happened: str,
    root_cause: str,
    justification_valid: bool | None = None,
    reason: str = "",
) -> Review:
    """Record what happened and why, and close the review.

    The reviewer is an owner of the service and never the change's author (for an emergency,
    the person who declared it): nobody validates their own emergency. A post-mortem must say
    whether the emergency was justified; a post-implementation review says nothing about it.
    """
    # Who may comes first: a refused person learns nothing about what the form lacks.
    if not may_complete(actor, review):
        raise ReviewForbidden(_forbidden_message(actor, review))
    _check_completion(review, what_happened, root_cause, justification_valid)
    with transaction.atomic():
        locked = Review.objects.select_for_update().select_related("change", "service")
        review = locked.get(pk=review.pk)
        if review.status != Review.Status.OPEN:
            raise ReviewConflict("This review is already completed.")
        review.what_happened = what_happened.strip()
        review.root_cause = root_cause.strip()
        review.justification_valid = justification_valid
        review.status = Review.Status.COMPLETED
        review.completed_by = actor
        review.completed_at = timezone.now()
        review.save()
        _ledger(
            review,
            "review.completed",
            actor,
            justification_valid=justification_valid,
            reason=reason.strip(),
        )
    return review


def _check_completion(
    review: Review, what_happened: str, root_cause: str, justification_valid: bool | None
) -> None:
    fields: dict[str, list[str]] = {}
    if not what_happened.strip():
        fields["what_happened"] = ["Say what happened."]
    if not root_cause.strip():
        fields["root_cause"] = ["Name the root cause."]
    if review.kind == Review.Kind.POST_MORTEM and justification_valid is None:
        fields["justification_valid"] = ["Say whether the emergency was justified."]
    if review.kind != Review.Kind.POST_MORTEM and justification_valid is not None:
        fields["justification_valid"] = ["Only a post-mortem judges an emergency's justification."]
    if fields:
        raise InvalidReview("The review is not complete.", fields=fields)


def _forbidden_message(actor: User, review: Review) -> str:
    if actor.pk == review.change.author_id:
        return (
            f"You wrote {review.change.ref}; another owner of {review.service.name} must review it."
        )
    if actor.pk == review.declared_by_id:
        return (
            f"You declared the emergency of {review.change.ref}; another owner of "
            f"{review.service.name} must review it."
        )
    return f"Only an owner of {review.service.name} may complete this review."


def add_action(
    *, review: Review, actor: User, description: str, owner: User, due_on: date, reason: str = ""
) -> ReviewAction:
    """Add a follow-up action with an owner (a person, never a pipeline account) and a due date."""
    if not may_manage_actions(actor, review):
        raise ReviewForbidden(f"Only an owner of {review.service.name} may add actions.")
    fields: dict[str, list[str]] = {}
    if not description.strip():
        fields["description"] = ["Describe the action."]
    if not owner.is_active or owner.is_service_account:
        fields["owner"] = ["The owner must be an active person, not a service account."]
    if due_on < timezone.now().date():
        fields["due_on"] = ["The due date cannot be in the past."]
    if fields:
        raise InvalidReview("The action cannot be added.", fields=fields)
    with transaction.atomic():
        action = ReviewAction.objects.create(
            review=review, description=description.strip(), owner=owner, due_on=due_on
        )
        _ledger(
            review,
            "review.action_added",
            actor,
            action=action.pk,
            description=action.description,
            owner=owner.username,
            due_on=due_on.isoformat(),
            reason=reason.strip(),
        )
    return action


def complete_action(*, action: ReviewAction, actor: User, reason: str = "") -> ReviewAction:
    """Mark an action done: by its owner, or by an owner of the review's service."""
    with transaction.atomic():
        action = ReviewAction.objects.select_for_update().get(pk=action.pk)
        review = Review.objects.select_related("service").get(pk=action.review_id)
        if actor.pk != action.owner_id and not may_manage_actions(actor, review):
            raise ReviewForbidden(
                f"Only the action's owner or an owner of {review.service.name} may mark it done."
            )
        if action.done_at is not None:
            raise ReviewConflict("This action is already done.")
        action.done_at = timezone.now()
        action.save(update_fields=["done_at"])
        _ledger(review, "review.action_done", actor, action=action.pk, reason=reason.strip())
    return action


def chase_reviews(now: datetime | None = None) -> dict[str, int]:
    """Remind owners of reviews due within a day (once), and escalate overdue ones (once).

    Set-based and safe to run twice or from two workers at once: each batch claims its rows with
    FOR UPDATE SKIP LOCKED and re-filters on reminded_at / escalated_at, so a row another run
    holds or has already handled is never handled again.
    """
    now = now or timezone.now()
    return {"reminded": _sweep(now, _remind_batch), "escalated": _sweep(now, _escalate_batch)}


def _sweep(now: datetime, batch) -> int:
    total = 0
    while True:
        handled = batch(now)
        total += handled
        if handled < CHASE_BATCH:
            return total


def _remind_batch(now: datetime) -> int:
    with transaction.atomic():
        claimed = _claim(reminded_at__isnull=True, due_at__gt=now, due_at__lte=now + REMIND_BEFORE)
        Review.objects.filter(pk__in=[r.pk for r in claimed]).update(reminded_at=now)
        for review in claimed:
            _tell(
                _owners(review.service),
                now,
                subject=f"{review.get_kind_display()} due soon: {review.change.ref}",
                body=f"{review.summary} It is due by {review.due_at:%Y-%m-%d %H:%M} UTC; after "
                "that it goes to the CAB.",
                review=review,
                reason="review due soon",
            )
            _ledger(review, "review.reminded", None, due_at=review.due_at)
    return len(claimed)


def _escalate_batch(now: datetime) -> int:
    with transaction.atomic():
        claimed = _claim(escalated_at__isnull=True, due_at__lte=now)
        Review.objects.filter(pk__in=[r.pk for r in claimed]).update(escalated_at=now)
        for review in claimed:
            _escalate(review, now)
    return len(claimed)


def _claim(**conditions) -> list[Review]:
    # SKIP LOCKED: a concurrent sweep passes over rows this one holds; once this one commits,
    # the reminded_at / escalated_at condition keeps the rows out of every later claim.
    return list(
        Review.objects.open()
        .filter(**conditions)
        .select_for_update(skip_locked=True, of=("self",))
        .select_related("change", "service")
        .order_by("due_at", "pk")[:CHASE_BATCH]
    )


def _escalate(review: Review, now: datetime) -> None:
    """Tell the service's CAB members and put the review on the next CAB meeting's agenda."""
    meeting = cab.next_meeting(review.service, now)
    if meeting is not None:
        cab.add_agenda_item(
            meeting=meeting,
            key=f"review:{review.pk}",
            kind=AGENDA_KIND[review.kind],
            title=f"Overdue {review.get_kind_display().lower()}: {review.change.ref}",
            detail=review.summary,
            change=review.change,
            release_id=review.release_id,
            review=review,
        )
    _tell(
        eligible_approvers(review.service, "cab"),
        now,
        subject=f"Overdue {review.get_kind_display().lower()}: {review.change.ref}",
        body=f"{review.summary} It was due by {review.due_at:%Y-%m-%d %H:%M} UTC and is not "
        f"completed. "
        + (
            f"It is on the agenda of {meeting}."
            if meeting
            else "No CAB meeting is scheduled to take it."
        ),
        review=review,
        reason="review overdue",
    )
    _ledger(
        review,
        "review.escalated",
        None,
        due_at=review.due_at,
        cab_meeting=meeting.pk if meeting else None,
    )


def _owners(service: Service) -> list[User]:
    return list(service.owners.filter(is_active=True))


def _tell(
    people: Iterable[User], now: datetime, *, subject: str, body: str, review: Review, reason: str
) -> None:
    routed, _ = route(people, now)
    notify(people=routed, subject=subject, body=body, url=review_url(review), reason=reason)


def _ledger(review: Review, kind: str, actor: User | None, **payload) -> None:
    payload = {
        "review": review.pk,
        "kind": review.kind,
        "trigger": review.trigger,
        "change": review.change.ref,
        "release": review.release_id,
        **{k: v.isoformat() if isinstance(v, datetime) else v for k, v in payload.items()},
    }
    ledger.append(
        kind=kind,
        subject=f"review:{review.pk}",
        actor=actor.username if actor else "system",
        payload=payload,
    )

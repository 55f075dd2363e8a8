"""Chasing reviews with time moved forward: a reminder a day before the due time, then, once
late, one escalation to the CAB (notified, on the next meeting's agenda, ledgered)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from changes.cab.models import AgendaItem, CabMeeting
from changes.reviews.models import Review
from changes.reviews.services import chase_reviews
from governance.models import LedgerEntry, Notification

pytestmark = pytest.mark.django_db


@pytest.fixture
def meeting(post_mortem) -> CabMeeting:
    """A CAB meeting a week after the emergency deployment, covering every service."""
    starts = post_mortem.opened_at + timedelta(days=7)
    return CabMeeting.objects.create(
        title="Weekly CAB", starts_at=starts, ends_at=starts + timedelta(hours=1)
    )


def notes(reason: str) -> list[tuple[str, str]]:
    return list(
        Notification.objects.filter(reason=reason)
        .order_by("pk")
        .values_list("recipient__username", "subject")
    )


def kinds_since(seq: int) -> list[str]:
    return list(
        LedgerEntry.objects.filter(seq__gt=seq).order_by("seq").values_list("kind", flat=True)
    )


def last_seq() -> int:
    return LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def test_a_post_mortem_is_chased_over_its_72_hours(post_mortem, meeting, cab_member):
    deployed = post_mortem.opened_at
    ref = post_mortem.change.ref
    start = last_seq()

    # Two days in, more than a day remains: nothing to do.
    assert chase_reviews(deployed + timedelta(hours=47)) == {"reminded": 0, "escalated": 0}
    assert kinds_since(start) == []

    # A day before it is due: the owner is reminded, once.
    assert chase_reviews(deployed + timedelta(hours=48)) == {"reminded": 1, "escalated": 0}
    assert chase_reviews(deployed + timedelta(hours=60)) == {"reminded": 0, "escalated": 0}
    assert notes("review due soon") == [("wanda", f"Post-mortem due soon: {ref}")]
    review = Review.objects.get(pk=post_mortem.pk)
    assert review.reminded_at == deployed + timedelta(hours=48)
    assert review.escalated_at is None
    assert kinds_since(start) == ["review.reminded"]

    # At 72 hours it is late: escalated to the CAB, once.
    assert chase_reviews(deployed + timedelta(hours=72)) == {"reminded": 0, "escalated": 1}
    assert chase_reviews(deployed + timedelta(hours=90)) == {"reminded": 0, "escalated": 0}
    review = Review.objects.get(pk=post_mortem.pk)
    assert review.escalated_at == deployed + timedelta(hours=72)
    assert review.status == "open"
    assert notes("review overdue") == [("carol", f"Overdue post-mortem: {ref}")]
    item = AgendaItem.objects.get(meeting=meeting)
    assert (item.key, item.kind, item.review, item.change) == (
        f"review:{review.pk}",
        "post_mortem",
        review,
        review.change,
    )
    assert item.title == f"Overdue post-mortem: {ref}"
    assert kinds_since(start) == ["review.reminded", "cab.agenda_item_added", "review.escalated"]
    escalated = LedgerEntry.objects.get(kind="review.escalated")
    assert (escalated.subject, escalated.actor, escalated.payload["cab_meeting"]) == (
        f"review:{review.pk}",
        "system",
        meeting.pk,
    )


def test_a_completed_review_is_never_chased(post_mortem, meeting, web_owner, cab_member):
    from changes.reviews import services

    services.complete_review(
        review=post_mortem,
        actor=web_owner,
        what_happened="Checkout was down.",
        root_cause="A certificate expired.",
        justification_valid=True,
    )
    start = last_seq()

    assert chase_reviews(post_mortem.opened_at + timedelta(hours=48)) == {
        "reminded": 0,
        "escalated": 0,
    }
    assert chase_reviews(post_mortem.opened_at + timedelta(hours=100)) == {
        "reminded": 0,
        "escalated": 0,
    }
    assert kinds_since(start) == []
    assert AgendaItem.objects.count() == 0


def test_a_review_found_late_is_escalated_without_a_reminder(failed_review, cab_member):
    start = last_seq()

    result = chase_reviews(failed_review.due_at + timedelta(minutes=1))

    assert result == {"reminded": 0, "escalated": 1}
    assert notes("review due soon") == []
    # No meeting is scheduled: the CAB is told so, and the review waits in the CAB queue.
    assert notes("review overdue") == [
        ("carol", f"Overdue post-implementation review: {failed_review.change.ref}")
    ]
    body = Notification.objects.get(reason="review overdue").body
    assert body.endswith("No CAB meeting is scheduled to take it.")
    assert kinds_since(start) == ["review.escalated"]


def test_a_meeting_for_other_services_does_not_take_the_review(
    failed_review, cab_member, other_service
):
    starts = failed_review.due_at + timedelta(days=1)
    billing_only = CabMeeting.objects.create(
        title="Billing CAB", starts_at=starts, ends_at=starts + timedelta(hours=1)
    )
    billing_only.services.add(other_service)

    chase_reviews(failed_review.due_at + timedelta(minutes=1))

    assert AgendaItem.objects.count() == 0


def test_many_late_reviews_are_handled_in_batches(failed_review, cab_member, monkeypatch):
    from changes.reviews import services
    from changes.reviews.services import ReviewOpening, open_review

    monkeypatch.setattr(services, "CHASE_BATCH", 2)
    for index in range(4):
        open_review(
            opening=ReviewOpening(
                kind="post_implementation",
                trigger="deployment_failed",
                change=failed_review.change,
                service=failed_review.service,
                summary=f"Failure {index}.",
                release_id=10_000 + index,
                due_at=failed_review.due_at,
            ),
            actor=None,
        )

    assert chase_reviews(failed_review.due_at) == {"reminded": 0, "escalated": 5}
    assert Review.objects.filter(escalated_at__isnull=True).count() == 0
    assert len(notes("review overdue")) == 5

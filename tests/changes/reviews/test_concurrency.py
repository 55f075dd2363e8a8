"""Two sweeps at the same instant, each on its own connection: every review is reminded or
escalated exactly once (rows are claimed FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from changes.cab.models import AgendaItem, CabMeeting
from changes.reviews.models import Review
from changes.reviews.services import ReviewOpening, chase_reviews, open_review
from governance.models import LedgerEntry, Notification
from tests.approvals.test_concurrency import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LATE = 6


@pytest.fixture
def late_reviews(failed_review, cab_member) -> list[Review]:
    """Seven open reviews: the failed deployment's and six more, all due at the same time."""
    for index in range(LATE):
        open_review(
            opening=ReviewOpening(
                kind="post_implementation",
                trigger="deployment_failed",
                change=failed_review.change,
                service=failed_review.service,
                summary=f"Failure {index}.",
                release_id=20_000 + index,
                due_at=failed_review.due_at,
            ),
            actor=None,
        )
    starts = failed_review.due_at + timedelta(days=2)
    CabMeeting.objects.create(title="CAB", starts_at=starts, ends_at=starts + timedelta(hours=1))
    return list(Review.objects.all())


def test_two_sweeps_at_once_escalate_each_late_review_once(late_reviews):
    when = late_reviews[0].due_at + timedelta(minutes=5)
    ledger_before = LedgerEntry.objects.count()

    results = run_together(lambda: chase_reviews(when), lambda: chase_reviews(when))

    assert all(isinstance(r, dict) for r in results), results
    assert sum(r["escalated"] for r in results) == LATE + 1
    assert sum(r["reminded"] for r in results) == 0
    assert Review.objects.filter(escalated_at=when).count() == LATE + 1
    assert Notification.objects.filter(reason="review overdue").count() == LATE + 1
    assert AgendaItem.objects.count() == LATE + 1
    kinds = list(
        LedgerEntry.objects.filter(pk__gt=0).order_by("seq").values_list("kind", flat=True)
    )[ledger_before:]
    assert sorted(set(kinds)) == ["cab.agenda_item_added", "review.escalated"]
    assert kinds.count("review.escalated") == LATE + 1


def test_two_sweeps_at_once_remind_each_review_once(late_reviews):
    when = late_reviews[0].due_at - timedelta(hours=3)

    results = run_together(lambda: chase_reviews(when), lambda: chase_reviews(when))

    assert sum(r["reminded"] for r in results) == LATE + 1
    assert Notification.objects.filter(reason="review due soon").count() == LATE + 1
    assert LedgerEntry.objects.filter(kind="review.reminded").count() == LATE + 1
    # A third run afterwards finds nothing left to do.
    assert chase_reviews(when) == {"reminded": 0, "escalated": 0}

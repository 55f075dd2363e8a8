"""Two people at once, on PostgreSQL's row locks and unique index: one review per quarter, one
outcome per item."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from django.db import connection

from governance.exceptions import GovernanceError
from governance.models import LedgerEntry
from reporting.reviews import services
from reporting.reviews.models import QuarterlyReview, QuarterlyReviewItem
from tests.reporting.reviews.conftest import REVIEW_DAY

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def at_once(*calls) -> list:
    """Run the calls in threads released together; each result, or the error it raised."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        barrier.wait()
        try:
            results[index] = call()
        except GovernanceError as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_starts_at_once_make_one_review(quarter, administrator, second_administrator):
    def start(person):
        return lambda: (
            services.start_quarterly_review(actor=person, quarter=date(2026, 7, 1), now=REVIEW_DAY)[
                0
            ].pk
        )

    first, second = at_once(start(administrator), start(second_administrator))
    assert first == second == QuarterlyReview.objects.get().pk
    assert QuarterlyReviewItem.objects.count() == 6
    assert LedgerEntry.objects.filter(kind="quarterly_review.started").count() == 1


def test_two_outcomes_at_once_record_one(quarter, administrator, cab_member):
    review, _ = services.start_quarterly_review(
        actor=administrator, quarter=date(2026, 7, 1), now=REVIEW_DAY
    )
    item = review.items.get(kind="emergency", involved_names="alice")

    def record(person, outcome):
        return lambda: (
            services.record_outcome(
                item=item, outcome=outcome, note="at once", actor=person
            ).outcome
        )

    results = at_once(record(cab_member, "accepted"), record(administrator, "follow_up"))
    recorded = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, services.ReviewConflict)]
    assert len(recorded) == 1 and len(refused) == 1
    assert QuarterlyReviewItem.objects.get(pk=item.pk).outcome == recorded[0]
    assert LedgerEntry.objects.filter(kind="quarterly_review.outcome_recorded").count() == 1

"""Concurrent decisions on one stage: row locks mean none is lost and none is counted twice."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection

from approvals.exceptions import NotEligible
from approvals.models import ApprovalStage, Decision, Release
from governance.exceptions import GovernanceError
from governance.models import LedgerEntry, Role, User
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(*calls: Callable[[], object]) -> list[object]:
    """Run each call in its own thread, released at the same instant; results or exceptions.

    Each thread has its own database connection (and transaction) and closes it at the end.
    """
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def worker(index: int, call: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as exc:  # handed back to the test to assert on
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return results


def approve_as(release_id: int, user_id: int) -> Callable[[], Decision]:
    """A decision made from a fresh load, as a separate web request would make it."""

    def call() -> Decision:
        release = Release.objects.get(pk=release_id)
        return factories.decide(release, User.objects.get(pk=user_id))

    return call


def test_two_approvers_at_the_same_time_both_count(production_release, approver, second_approver):
    ledger_before = LedgerEntry.objects.count()

    results = run_together(
        approve_as(production_release.pk, approver.pk),
        approve_as(production_release.pk, second_approver.pk),
    )

    assert all(isinstance(result, Decision) for result in results), results
    stage = ApprovalStage.objects.get(request__release=production_release, key="service")
    assert (stage.approval_count, stage.status) == (2, "approved")
    assert sorted(stage.decisions.values_list("approver__username", flat=True)) == ["alice", "bob"]
    assert Decision.objects.count() == 2
    assert ApprovalStage.objects.get(request__release=production_release, key="cab").status == (
        "active"
    )
    new_kinds = LedgerEntry.objects.filter(seq__gt=ledger_before).values_list("kind", flat=True)
    assert sorted(new_kinds) == ["decision.recorded", "decision.recorded"]
    assert factories.approval_snapshot(production_release)["status"] == "pending"


def test_the_same_person_twice_at_the_same_time_counts_once(production_release, approver):
    ledger_before = LedgerEntry.objects.count()

    results = run_together(
        approve_as(production_release.pk, approver.pk),
        approve_as(production_release.pk, approver.pk),
    )

    decisions = [r for r in results if isinstance(r, Decision)]
    errors = [r for r in results if isinstance(r, GovernanceError)]
    assert (len(decisions), len(errors)) == (1, 1), results
    assert isinstance(errors[0], NotEligible)
    assert errors[0].message == (
        "You have already decided Service approval; it needs distinct approvers."
    )
    assert Decision.objects.filter(approver=approver).count() == 1
    stage = ApprovalStage.objects.get(request__release=production_release, key="service")
    assert (stage.approval_count, stage.status) == (1, "active")
    assert LedgerEntry.objects.count() == ledger_before + 1


def test_three_approvals_racing_for_two_places_count_two(
    production_release, approver, second_approver, service
):
    third = factories.UserFactory(username="heidi")
    factories.grant(third, Role.APPROVER, service)
    # heidi was granted after the plan was frozen: only alice and bob are eligible.
    results = run_together(
        approve_as(production_release.pk, approver.pk),
        approve_as(production_release.pk, second_approver.pk),
        approve_as(production_release.pk, third.pk),
    )

    assert [type(r).__name__ for r in results] == ["Decision", "Decision", "NotEligible"]
    stage = ApprovalStage.objects.get(request__release=production_release, key="service")
    assert (stage.approval_count, stage.status) == (2, "approved")
    assert Decision.objects.count() == 2

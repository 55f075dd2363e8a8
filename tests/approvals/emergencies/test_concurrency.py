"""Two people at once: one review and one emergency per change, whatever the timing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from approvals.emergencies.exceptions import EmergencyConflict, InvalidEmergency
from approvals.emergencies.models import EmergencyException
from approvals.emergencies.services import declare_emergency, record_secondary_review
from changes.records.models import ChangeRecord
from changes.records.services import ChangeInput, open_change
from governance.models import LedgerEntry, Service, User
from tests.approvals.test_concurrency import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def review_as(emergency_id: int, user_id: int, outcome: str) -> Callable[[], object]:
    def call() -> object:
        return record_secondary_review(
            emergency=EmergencyException.objects.get(pk=emergency_id),
            actor=User.objects.get(pk=user_id),
            outcome=outcome,
            notes="Actions: retrain on-call." if outcome == "not_justified" else "",
        )

    return call


def declare_on(change_id: int, user_id: int, service_id: int) -> Callable[[], object]:
    def call() -> object:
        return declare_emergency(
            actor=User.objects.get(pk=user_id),
            service=Service.objects.get(pk=service_id),
            title="",
            justification="Payments fail.",
            outage="Checkout down.",
            controls=["extra_monitoring"],
            change=ChangeRecord.objects.get(pk=change_id),
        )

    return call


def test_two_cab_members_reviewing_at_once_record_one_review(
    org, service, release_manager, cab_member, other_cab_member
):
    emergency = declare_emergency(
        actor=release_manager,
        service=service,
        title="Hotfix",
        justification="Payments fail.",
        outage="Checkout down.",
        controls=["extra_monitoring"],
    )

    results = run_together(
        review_as(emergency.pk, cab_member.pk, "justified"),
        review_as(emergency.pk, other_cab_member.pk, "not_justified"),
    )

    assert sorted(type(r).__name__ for r in results) == ["EmergencyConflict", "EmergencyException"]
    assert LedgerEntry.objects.filter(kind="emergency.reviewed").count() == 1


def test_two_declarations_on_one_change_at_once_make_one_emergency(
    org, service, release_manager, administrator
):
    change = open_change(data=ChangeInput(title="Hotfix", services=[service]), actor=administrator)

    results = run_together(
        declare_on(change.pk, release_manager.pk, service.pk),
        declare_on(change.pk, administrator.pk, service.pk),
    )

    refused = [r for r in results if isinstance(r, Exception)]
    # Seen while writing (the unique change) or, when the first one committed already, while
    # validating: either way a person is told, and nothing of the second is left.
    assert len(refused) == 1, results
    assert isinstance(refused[0], EmergencyConflict | InvalidEmergency), results
    assert EmergencyException.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="emergency.declared").count() == 1

"""Example tests of the delegation and grant-expiry rules (governance/authority/services.py)
that mutation testing showed no other test pinned down; each names the rule it holds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from governance.authority.services import (
    create_delegation,
    expire_role_grants,
    revoke_delegation,
)
from governance.exceptions import InvalidDelegation, PermissionDenied
from governance.models import Delegation, LedgerEntry, Notification, Role, RoleAssignment
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def frank(db):
    return factories.UserFactory(username="frank", first_name="Frank")


@pytest.fixture
def grace(db):
    return factories.UserFactory(username="grace", first_name="Grace")


def lend(delegator, delegate, service=None, *, actor=None, hours=(-1, 24)):
    now = timezone.now()
    return create_delegation(
        delegator=delegator,
        delegate=delegate,
        service=service,
        starts_at=now + timedelta(hours=hours[0]),
        ends_at=now + timedelta(hours=hours[1]),
        reason="away",
        actor=actor or delegator,
    )


def test_the_delegator_told_of_an_arranged_delegation_learns_how_to_undo_it(
    org, approver, administrator, frank
):
    lend(approver, frank, actor=administrator)
    body = Notification.objects.get(recipient=approver).body
    assert body.endswith(
        "If this is wrong, end it on the delegations page and tell an administrator."
    )


def test_delegations_of_two_services_in_one_window_both_stand(
    org, approver, service, low_tier_service, frank
):
    lend(approver, frank, service)
    lend(approver, frank, low_tier_service)
    assert Delegation.objects.filter(delegator=approver).count() == 2


def test_a_second_delegation_of_the_same_service_in_the_window_is_refused(
    org, approver, service, frank, grace
):
    lend(approver, frank, service)
    with pytest.raises(InvalidDelegation, match="overlaps your delegation to frank") as refused:
        lend(approver, grace, service, hours=(2, 30))
    assert refused.value.fields == {"starts_at": ["Overlaps another delegation."]}
    assert Delegation.objects.filter(delegator=approver).count() == 1


def test_a_delegation_of_everything_overlapping_a_service_delegation_is_refused(
    org, approver, service, frank, grace
):
    lend(approver, frank, service)
    with pytest.raises(InvalidDelegation, match="overlaps"):
        lend(approver, grace, None, hours=(2, 30))
    assert Delegation.objects.filter(delegator=approver).count() == 1


def test_ending_a_delegation_ends_that_one_only_and_is_ledgered(
    org, approver, second_approver, frank, grace
):
    mine = lend(approver, frank)
    other = lend(second_approver, grace)

    ended = revoke_delegation(delegation=mine, actor=approver)

    assert ended.revoked_at is not None
    other.refresh_from_db()
    assert other.revoked_at is None
    entry = LedgerEntry.objects.get(kind="delegation.revoked")
    assert (entry.subject, entry.actor) == (f"user:{approver.pk}", "alice")
    assert entry.payload == {"delegation": mine.pk, "delegate": "frank", "reason": ""}


def test_ending_an_ended_delegation_changes_nothing(org, approver, frank):
    delegation = lend(approver, frank)
    first = revoke_delegation(delegation=delegation, actor=approver, reason="back early")
    again = revoke_delegation(delegation=delegation, actor=approver, reason="twice")
    assert again.revoked_at == first.revoked_at
    assert LedgerEntry.objects.filter(kind="delegation.revoked").count() == 1


def test_only_the_delegator_or_an_administrator_ends_a_delegation(
    org, approver, second_approver, administrator, frank
):
    delegation = lend(approver, frank)
    for someone in (frank, second_approver):
        with pytest.raises(PermissionDenied) as refused:
            revoke_delegation(delegation=delegation, actor=someone)
        assert refused.value.message == (
            "Only the delegator or an administrator ends a delegation."
        )
    delegation.refresh_from_db()
    assert delegation.revoked_at is None
    assert not LedgerEntry.objects.filter(kind="delegation.revoked").exists()

    revoke_delegation(delegation=delegation, actor=administrator, reason="set up in error")
    entry = LedgerEntry.objects.get(kind="delegation.revoked")
    assert (entry.actor, entry.payload["reason"]) == ("ada", "set up in error")


def test_the_expiry_sweep_counts_every_grant_it_revokes(org, frank, grace, service):
    soon = timezone.now() + timedelta(minutes=5)
    for person in (frank, grace):
        factories.grant(person, Role.APPROVER, service)
        RoleAssignment.objects.filter(user=person).update(expires_at=soon)

    assert expire_role_grants(now=soon) == 2
    assert not RoleAssignment.objects.filter(user__in=(frank, grace)).exists()
    assert LedgerEntry.objects.filter(kind="role.revoked", actor="system").count() == 2

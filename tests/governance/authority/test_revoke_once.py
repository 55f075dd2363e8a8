"""A grant is revoked once: a second revocation of the same grant (a person and beat's expiry
sweep at the same moment, or a stale copy of the grant) writes nothing."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from governance.authority.services import expire_role_grants, revoke_role
from governance.models import LedgerEntry, RoleAssignment

pytestmark = pytest.mark.django_db


def test_revoking_a_grant_already_revoked_writes_nothing(org, administrator, approver, service):
    grant = RoleAssignment.objects.get(user=approver, service=service)
    stale = RoleAssignment.objects.get(pk=grant.pk)
    assert revoke_role(assignment=grant, reason="Moved team", actor=administrator) is True
    entries = LedgerEntry.objects.count()
    assert revoke_role(assignment=stale, reason="Moved team", actor=administrator) is False
    assert LedgerEntry.objects.count() == entries
    assert LedgerEntry.objects.filter(kind="role.revoked").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_revocation_and_the_expiry_sweep_at_once_ledger_one_revocation(
    org, administrator, approver, service
):
    grant = RoleAssignment.objects.get(user=approver, service=service)
    RoleAssignment.objects.filter(pk=grant.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def run(name, call):
        barrier.wait()
        try:
            results[name] = call()
        finally:
            connection.close()

    calls = {
        "person": lambda: revoke_role(assignment=grant, reason="Leaving", actor=administrator),
        "sweep": expire_role_grants,
    }
    threads = [threading.Thread(target=run, args=item) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted([bool(results["person"]), bool(results["sweep"])]) == [False, True]
    assert not RoleAssignment.objects.filter(pk=grant.pk).exists()
    assert LedgerEntry.objects.filter(kind="role.revoked").count() == 1
    assert not approver.has_perm("governance.approve_release", service)

"""Role administration: only administrators grant and revoke, always with a reason, audited."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from governance.authority.services import grant_role, is_administrator, revoke_role
from governance.exceptions import PermissionDenied
from governance.models import LedgerEntry, Role, RoleAssignment
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("anonymous", 302),
        ("outsider", 403),
        ("approver", 403),
        ("auditor", 403),
        ("cab_member", 403),
        ("administrator", 200),
    ],
)
def test_roles_page_permission_matrix(client, org, request, persona, status):
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    assert client.get(reverse("governance:role_list")).status_code == status


def test_an_administrator_grants_a_role_in_the_page(client, org, administrator, outsider, service):
    client.force_login(administrator)
    response = client.post(
        reverse("governance:role_list"),
        {
            "user": outsider.pk,
            "role": Role.APPROVER,
            "service": service.pk,
            "reason": "New on-call",
        },
    )
    assert response.status_code == 302
    assignment = RoleAssignment.objects.get(user=outsider)
    assert (assignment.granted_by, assignment.reason) == (administrator, "New on-call")
    assert outsider.has_perm("governance.approve_release", service)
    entry = LedgerEntry.objects.filter(kind="role.granted").latest("seq")
    assert (entry.actor, entry.payload["user"], entry.payload["scope"]) == (
        "ada",
        "mallory",
        "payments-api",
    )
    page = client.get(reverse("governance:role_list"), {"q": "mallory"}).content.decode()
    assert "New on-call" in page


def test_nobody_grants_a_role_to_themselves(client, org, administrator):
    client.force_login(administrator)
    before = (RoleAssignment.objects.count(), LedgerEntry.objects.count())
    response = client.post(
        reverse("governance:role_list"),
        {
            "user": administrator.pk,
            "role": Role.APPROVER,
            "service": "",
            "reason": "why not",
        },
    )
    assert response.status_code == 400
    assert "Nobody can grant a role to themselves" in response.content.decode()
    assert (RoleAssignment.objects.count(), LedgerEntry.objects.count()) == before


def test_people_who_are_not_administrators_cannot_grant_or_revoke(
    org, approver, outsider, service, second_approver
):
    before = (RoleAssignment.objects.count(), LedgerEntry.objects.count())
    with pytest.raises(PermissionDenied, match="Only administrators"):
        grant_role(user=outsider, role=Role.APPROVER, service=service, reason="x", actor=approver)
    assignment = RoleAssignment.objects.filter(user=second_approver).first()
    with pytest.raises(PermissionDenied, match="Only administrators"):
        revoke_role(assignment=assignment, reason="x", actor=approver)
    assert (RoleAssignment.objects.count(), LedgerEntry.objects.count()) == before


def test_an_administrator_grant_past_its_expiry_administers_nothing(org, administrator, outsider):
    grant_role(
        user=outsider,
        role=Role.ADMINISTRATOR,
        service=None,
        reason="Cover for a week",
        expires_at=timezone.now() + timedelta(hours=1),
        actor=administrator,
    )
    assert is_administrator(outsider)
    before = (RoleAssignment.objects.count(), LedgerEntry.objects.count())

    with mock.patch("django.utils.timezone.now", return_value=timezone.now() + timedelta(hours=2)):
        # Expired, and beat's sweep has not revoked the grant yet.
        assert not is_administrator(outsider)
        with pytest.raises(PermissionDenied, match="Only administrators"):
            grant_role(
                user=administrator, role=Role.AUDITOR, service=None, reason="x", actor=outsider
            )

    assert (RoleAssignment.objects.count(), LedgerEntry.objects.count()) == before


def test_a_service_account_can_hold_only_the_release_manager_role(
    org, administrator, pipeline_bot, service
):
    with pytest.raises(PermissionDenied, match="Service accounts only request releases"):
        grant_role(
            user=pipeline_bot, role=Role.APPROVER, service=service, reason="x", actor=administrator
        )
    assert not pipeline_bot.has_perm("governance.approve_release", service)


def test_revoking_needs_a_reason_and_takes_the_permission_away(
    client, org, administrator, second_approver, service
):
    assignment = RoleAssignment.objects.get(user=second_approver, service=service)
    client.force_login(administrator)
    url = reverse("governance:role_revoke", args=[assignment.pk])
    client.post(url, {"reason": ""})
    assert RoleAssignment.objects.filter(pk=assignment.pk).exists()
    client.post(url, {"reason": "Left the team"})
    assert not RoleAssignment.objects.filter(pk=assignment.pk).exists()
    second_approver = type(second_approver).objects.get(pk=second_approver.pk)
    assert not second_approver.has_perm("governance.approve_release", service)
    assert LedgerEntry.objects.filter(kind="role.revoked", payload__reason="Left the team").exists()


def test_an_administrator_cannot_revoke_their_own_administrator_role(org, administrator):
    assignment = RoleAssignment.objects.get(user=administrator, role=Role.ADMINISTRATOR)
    with pytest.raises(PermissionDenied, match="own administrator role"):
        revoke_role(assignment=assignment, reason="oops", actor=administrator)


def test_roles_page_query_count_does_not_grow_with_rows(client, org, administrator, service):
    client.force_login(administrator)
    url = reverse("governance:role_list")
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for index in range(20):
        factories.grant(factories.UserFactory(username=f"extra{index}"), Role.APPROVER, service)
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(few) == len(many)

"""The Django admin: who may enter, policy edits publish versions, the ledger is read-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from governance.models import LedgerEntry, Policy, PolicyVersion, Role, RoleAssignment
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def administrator(db):
    user = factories.UserFactory(username="ada")
    factories.grant(user, Role.ADMINISTRATOR)
    user.refresh_from_db()
    user.is_superuser = True  # The demo administrator manages everything in the admin.
    user.save(update_fields=["is_superuser"])
    return user


@pytest.mark.parametrize("persona", ["anonymous", "approver", "auditor"])
def test_only_staff_enter_the_admin(client, org, request, persona):
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def _policy_form(policy_obj: Policy, source: str) -> dict:
    return {
        "name": policy_obj.name,
        "slug": policy_obj.slug,
        "description": "",
        "is_active": "on",
        "source": source,
        "comment": "tighten staging",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
    }


def test_editing_a_policy_publishes_a_new_version_with_a_ledger_entry(
    client, policy, administrator
):
    current = Policy.objects.get(slug="default")
    client.force_login(administrator)
    source = current.source.replace(
        "count: 1\n          order: 10\n          sla_hours: 24",
        "count: 2\n          order: 10\n          sla_hours: 24",
        1,
    )
    assert source != current.source
    before = LedgerEntry.objects.filter(kind="policy.published").count()
    response = client.post(
        reverse("admin:governance_policy_change", args=[current.pk]), _policy_form(current, source)
    )
    assert response.status_code == 302
    current.refresh_from_db()
    assert (current.version, current.source) == (2, source)
    assert PolicyVersion.objects.get(policy=current, number=2).comment == "tighten staging"
    assert LedgerEntry.objects.filter(kind="policy.published").count() == before + 1


def test_a_broken_cel_condition_is_a_form_error_and_changes_nothing(client, policy, administrator):
    current = Policy.objects.get(slug="default")
    client.force_login(administrator)
    broken = current.source.replace('when: environment.risk == "low"', "when: environment.risk ==")
    response = client.post(
        reverse("admin:governance_policy_change", args=[current.pk]), _policy_form(current, broken)
    )
    assert response.status_code == 200
    assert "Rule &#x27;dev-self-service&#x27;" in response.content.decode()
    assert "column" in response.content.decode()
    current.refresh_from_db()
    assert current.version == 1
    assert PolicyVersion.objects.filter(policy=current).count() == 1


def test_granting_a_role_in_the_admin_goes_through_the_service(
    client, org, administrator, service, outsider
):
    client.force_login(administrator)
    response = client.post(
        reverse("admin:governance_roleassignment_add"),
        {
            "user": outsider.pk,
            "role": Role.APPROVER,
            "service": service.pk,
            "reason": "covering",
        },
    )
    assert response.status_code == 302
    assignment = RoleAssignment.objects.get(user=outsider)
    assert assignment.granted_by == administrator
    assert outsider.has_perm("governance.approve_release", service)
    assert LedgerEntry.objects.filter(kind="role.granted", payload__user="mallory").exists()


def test_the_ledger_cannot_be_edited_in_the_admin(client, policy, administrator):
    client.force_login(administrator)
    entry = LedgerEntry.objects.first()
    assert client.get(reverse("admin:governance_ledgerentry_changelist")).status_code == 200
    response = client.post(
        reverse("admin:governance_ledgerentry_delete", args=[entry.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()

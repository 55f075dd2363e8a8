"""The Django admin: who may enter, policy edits publish versions, the ledger is read-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from governance.models import (
    LedgerEntry,
    Policy,
    PolicyProposal,
    PolicyVersion,
    Role,
    RoleAssignment,
)
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


def test_a_published_policys_rules_are_not_edited_in_the_admin(client, policy, administrator):
    """The editor simulates a change and sends a loosening to a second administrator; a source
    posted here would go around that, so it is ignored and the page points to the editor."""
    current = Policy.objects.get(slug="default")
    published = current.source
    client.force_login(administrator)
    url = reverse("admin:governance_policy_change", args=[current.pk])
    loosened = current.source.replace("count: 2", "count: 1")
    form = {**_policy_form(current, loosened), "description": "Renamed in the admin"}

    response = client.post(url, form)

    assert response.status_code == 302
    current.refresh_from_db()
    assert (current.version, current.description) == (1, "Renamed in the admin")
    assert current.source == published
    assert not PolicyProposal.objects.exists()
    page = client.get(url).content.decode()
    assert reverse("policy_editor:policy_edit", args=["default"]) in page


def test_a_new_policy_is_published_from_the_admin_with_a_ledger_entry(
    client, policy, administrator
):
    client.force_login(administrator)
    source = "rules:\n  - id: everything\n    description: One approver everywhere.\n"
    form = {**_policy_form(Policy(name="Strict", slug="strict"), source), "is_active": ""}
    before = LedgerEntry.objects.filter(kind="policy.published").count()

    response = client.post(reverse("admin:governance_policy_add"), form)

    assert response.status_code == 302
    created = Policy.objects.get(slug="strict")
    assert (created.version, created.source) == (1, source)
    assert PolicyVersion.objects.get(policy=created, number=1).comment == "tighten staging"
    assert LedgerEntry.objects.filter(kind="policy.published").count() == before + 1


def test_a_broken_cel_condition_is_a_form_error_and_changes_nothing(client, policy, administrator):
    client.force_login(administrator)
    broken = "rules:\n  - id: dev-self-service\n    when: environment.risk ==\n"
    form = _policy_form(Policy(name="Broken", slug="broken"), broken)

    response = client.post(reverse("admin:governance_policy_add"), form)

    assert response.status_code == 200
    assert "Rule &#x27;dev-self-service&#x27;" in response.content.decode()
    assert "column" in response.content.decode()
    assert not Policy.objects.filter(slug="broken").exists()


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

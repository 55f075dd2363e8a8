"""Nobody becomes able to decide through an administrative act of their own.

Grants, delegations and group mappings have their own tests; these cover the catalogue, where
service ownership and team membership also decide who may approve.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from governance.models import LedgerEntry, Role, Service, Team
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_administrator(db):
    user = factories.UserFactory(username="ben")
    factories.grant(user, Role.ADMINISTRATOR)
    return user


def service_form(service: Service, owners: list) -> dict:
    return {
        "name": service.name,
        "slug": service.slug,
        "description": "",
        "tier": service.tier,
        "team": service.team.pk,
        "owners": [person.pk for person in owners],
        "vendor": "",
        "compliance_tags": [],
    }


def test_an_administrator_cannot_make_themselves_a_service_owner(
    client, org, administrator, service, approver
):
    client.force_login(administrator)
    url = reverse("governance:catalogue_edit", args=["services", service.pk])
    entries = LedgerEntry.objects.count()

    response = client.post(url, service_form(service, [approver, administrator]))

    assert response.status_code == 400
    assert "cannot make yourself an owner" in response.content.decode()
    assert list(Service.objects.get(pk=service.pk).owners.all()) == []
    assert LedgerEntry.objects.count() == entries


def test_another_administrator_may_make_them_an_owner(
    client, org, administrator, second_administrator, service
):
    client.force_login(second_administrator)
    url = reverse("governance:catalogue_edit", args=["services", service.pk])

    response = client.post(url, service_form(service, [administrator]))

    assert response.status_code == 302
    assert list(Service.objects.get(pk=service.pk).owners.all()) == [administrator]
    # ...and an owner already listed keeps their place when they edit the service themselves.
    client.force_login(administrator)
    assert client.post(url, service_form(service, [administrator])).status_code == 302


def test_an_administrator_cannot_join_a_team_themselves(client, org, administrator, team):
    client.force_login(administrator)
    url = reverse("governance:catalogue_edit", args=["teams", team.pk])

    response = client.post(
        url, {"name": team.name, "slug": team.slug, "members": [administrator.pk]}
    )

    assert response.status_code == 400
    assert list(Team.objects.get(pk=team.pk).members.all()) == []


@pytest.mark.parametrize("model", ["service", "team"])
def test_the_django_admin_does_not_edit_ownership_around_the_catalogue(
    client, org, administrator, service, team, model
):
    type(administrator).objects.filter(pk=administrator.pk).update(is_superuser=True)
    client.force_login(administrator)
    target = service if model == "service" else team

    response = client.post(
        reverse(f"admin:governance_{model}_change", args=[target.pk]),
        {"name": "renamed", "slug": target.slug, "owners": [administrator.pk]},
    )

    assert response.status_code == 403
    assert type(target).objects.get(pk=target.pk).name == target.name

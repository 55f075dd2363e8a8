"""Incidents in the Django admin: read-only; the incident a change fixes cannot be edited in."""

from __future__ import annotations

import pytest
from django.urls import reverse

from changes.models import ChangeRecord
from governance.models import User
from tests.changes.incidents.conftest import open_incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client, administrator):
    User.objects.filter(pk=administrator.pk).update(is_superuser=True, is_staff=True)
    client.force_login(User.objects.get(pk=administrator.pk))
    return client


def test_a_change_cannot_be_linked_to_an_incident_in_the_admin(
    superuser_client, production_release
):
    incident = open_incident(production_release.service)
    change = production_release.change
    url = reverse("admin:changes_changerecord_change", args=[change.pk])

    response = superuser_client.post(
        url, {"title": "Renamed", "external_url": "", "incident": incident.pk}
    )

    assert response.status_code == 403
    assert ChangeRecord.objects.get(pk=change.pk).incident is None


def test_incidents_are_listed_but_never_added_changed_or_deleted(
    superuser_client, production_release
):
    incident = open_incident(production_release.service, external_id="INC-ADMIN")

    listing = superuser_client.get(reverse("admin:changes_incident_changelist"))
    assert listing.status_code == 200 and "INC-ADMIN" in listing.content.decode()
    assert superuser_client.get(reverse("admin:changes_incident_add")).status_code == 403
    change = reverse("admin:changes_incident_change", args=[incident.pk])
    assert superuser_client.post(change, {"title": "x", "status": "resolved"}).status_code == 403
    delete = reverse("admin:changes_incident_delete", args=[incident.pk])
    assert superuser_client.post(delete, {"post": "yes"}).status_code == 403
    incident.refresh_from_db()
    assert (incident.title, incident.status) == ("Database failover", "triggered")

"""Service dependencies in the catalogue: edited on the service form, recorded in the ledger."""

from __future__ import annotations

import pytest
from django.urls import reverse

from governance.ledger.models import LedgerEntry
from governance.models import Service
from tests.governance.catalogue.test_catalogue import service_form

pytestmark = pytest.mark.django_db


def test_an_administrator_sets_what_a_service_depends_on(
    client, org, administrator, service, other_service
):
    client.force_login(administrator)
    url = reverse("governance:catalogue_edit", args=["services", service.pk])

    response = client.post(url, service_form(service, depends_on=[other_service.pk]))

    assert response.status_code == 302
    assert list(Service.objects.get(pk=service.pk).depends_on.all()) == [other_service]
    assert list(other_service.dependents.all()) == [service]
    assert "depends_on" in LedgerEntry.objects.order_by("-seq").first().payload["fields"]


def test_a_service_cannot_depend_on_itself(client, org, administrator, service):
    client.force_login(administrator)
    url = reverse("governance:catalogue_edit", args=["services", service.pk])
    before = LedgerEntry.objects.count()

    response = client.post(url, service_form(service, depends_on=[service.pk]))

    assert response.status_code == 400
    assert "cannot depend on itself" in response.content.decode()
    assert service.depends_on.count() == 0
    assert LedgerEntry.objects.count() == before

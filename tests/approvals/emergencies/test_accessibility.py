"""The emergency pages are named in their titles, and the declaration form announces errors."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from approvals.emergencies.forms import DeclareForm
from approvals.emergencies.services import declare_emergency
from changes.incidents.models import Incident
from governance.models import Service
from governance.policy.engine import EmergencySettings
from tests.test_form_accessibility import assert_errors_announced, crispy

pytestmark = pytest.mark.django_db


def title_of(client, url: str) -> str:
    return re.search(r"<title>(.*?)</title>", client.get(url).content.decode()).group(1)


def test_each_emergency_page_names_itself(client, org, service, release_manager):
    emergency = declare_emergency(
        actor=release_manager,
        service=service,
        title="Hotfix",
        justification="Payments fail.",
        outage="Checkout down.",
        controls=["extra_monitoring"],
    )
    client.force_login(release_manager)

    assert title_of(client, reverse("emergencies:emergency_list")) == "Emergencies · Signoff"
    assert title_of(client, reverse("emergencies:emergency_declare")) == (
        "Declare an emergency · Emergencies · Signoff"
    )
    assert title_of(client, reverse("emergencies:emergency_detail", args=[emergency.pk])) == (
        f"Emergency {emergency.change.ref} · Emergencies · Signoff"
    )


def test_the_declaration_form_announces_its_errors(org, service):
    form = DeclareForm(
        {"service": "nope", "title": "", "controls": ["prayer"], "hours": "12"},
        services=Service.objects.all(),
        incidents=Incident.objects.none(),
        settings=EmergencySettings(),
    )

    assert not form.is_valid()
    assert {"service", "title", "justification", "controls", "hours"} <= set(form.errors)
    assert_errors_announced(form, crispy(form))

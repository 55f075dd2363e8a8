"""The demo's incidents: one open on web-frontend (holding its production release), one resolved
on payments-api; nothing holds payments-api, and a second run changes nothing."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from approvals.gate import evaluate_gate
from approvals.models import Release
from changes.incidents.models import Incident
from governance.ledger.models import LedgerEntry

pytestmark = pytest.mark.django_db


def test_the_demo_incidents_hold_web_frontend_but_never_payments_api(db):
    call_command("seed_demo", stdout=io.StringIO())
    ledger = LedgerEntry.objects.count()

    call_command("seed_demo", stdout=io.StringIO())

    assert LedgerEntry.objects.count() == ledger
    assert sorted(Incident.objects.values_list("external_id", "status", "priority")) == [
        ("INC0010001", "acknowledged", "P3"),  # from ServiceNow, on search-api: holds nothing
        ("INC0040112", "resolved", "P1"),
        ("Q2DEMOWEB1", "acknowledged", "P2"),
    ]
    gates = {
        (r.service.slug, r.environment.slug, r.version): evaluate_gate(
            Release.objects.for_gate().get(pk=r.pk)
        )
        # The demo's own releases, not the months of history behind the metrics pages.
        for r in Release.objects.exclude(change__ref__startswith="DEMO-M").select_related(
            "service", "environment"
        )
    }
    assert gates["web-frontend", "production", "3.9.0"].status == "blocked"
    held = {key for key, gate in gates.items() if any("incident" in r for r in gate.reasons)}
    assert held == {("web-frontend", "production", "3.9.0")}

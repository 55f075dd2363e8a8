"""The demo's ServiceNow records: a scheduled change on payments-api and a P3 on search-api that
holds nothing; a second run changes nothing."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from approvals.gate import evaluate_gate
from approvals.models import Release
from changes.incidents.models import Incident
from changes.records.models import ChangeRecord
from governance.ledger.models import LedgerEntry

pytestmark = pytest.mark.django_db


def test_the_demo_servicenow_records_hold_nothing_and_a_second_run_changes_nothing(db):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    ledger = LedgerEntry.objects.count()

    again = io.StringIO()
    call_command("seed_demo_servicenow", stdout=again)

    assert "Demo ServiceNow records: 2 created, 0 already present.\n" in out.getvalue()
    assert again.getvalue() == "Demo ServiceNow records: 0 created, 2 already present.\n"
    assert LedgerEntry.objects.count() == ledger
    change = ChangeRecord.objects.get(ref="CHG0030001")
    assert (change.source, change.state, change.implementer.username) == (
        "servicenow",
        "scheduled",
        "erin",
    )
    assert list(change.services.values_list("slug", flat=True)) == ["payments-api"]
    incident = Incident.objects.get(source="servicenow")
    assert (incident.external_id, incident.status, incident.priority) == (
        "INC0010001",
        "acknowledged",
        "P3",
    )
    assert list(incident.services.values_list("slug", flat=True)) == ["search-api"]
    held = {
        release.service.slug
        for release in Release.objects.for_gate()
        if any("ServiceNow" in reason for reason in evaluate_gate(release).reasons)
    }
    assert held == set()

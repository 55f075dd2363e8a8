"""The demo's anomaly alerts: Heidi and Ivan approving each other's releases, the demo's instant
tier-1 approvals as rubber-stamping, the hotfix's alert acknowledged; a second run adds nothing."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from governance.ledger.models import LedgerEntry
from reporting.anomalies.models import AnomalyAlert

pytestmark = pytest.mark.django_db


def test_the_demo_shows_a_reciprocal_pair_and_an_acknowledged_alert(db):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)  # seeds the demo's anomalies too
    assert "Demo anomalies: 6 releases made" in out.getvalue()

    pair = AnomalyAlert.objects.get(kind="reciprocity")
    assert (pair.person.username, pair.counterpart.username) == ("heidi", "ivan")
    assert len(pair.evidence["decisions"]) == 6
    acknowledged = AnomalyAlert.objects.get(status="acknowledged")
    assert (acknowledged.kind, acknowledged.acknowledged_by.username) == ("rubber_stamp", "sam")
    assert "payments-api 2.4.0-hf1" in acknowledged.summary

    alerts, ledger = AnomalyAlert.objects.count(), LedgerEntry.objects.count()
    call_command("seed_demo_anomalies", stdout=io.StringIO())
    assert (AnomalyAlert.objects.count(), LedgerEntry.objects.count()) == (alerts, ledger)

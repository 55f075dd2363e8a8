"""`POST /integrations/pagerduty/`: signed V3 webhooks become incidents; nothing else does."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from changes.incidents import services
from changes.incidents.models import Incident, WebhookDelivery
from changes.incidents.signatures import pagerduty_signature
from governance.ledger.models import LedgerEntry
from tests.changes.incidents.conftest import NEW_SECRET, SECRET, deliver, pd_event

pytestmark = pytest.mark.django_db


def rows() -> tuple[int, int, int]:
    return Incident.objects.count(), WebhookDelivery.objects.count(), LedgerEntry.objects.count()


def test_a_signed_triggered_event_opens_the_incident_on_the_mapped_service(client, pagerduty):
    response = deliver(client, pd_event())

    assert (response.status_code, response.json()) == (200, {"status": "created"})
    incident = Incident.objects.get()
    assert (
        incident.source,
        incident.external_id,
        incident.external_url,
        incident.title,
        incident.priority,
        incident.severity,
        incident.urgency,
        incident.status,
        [s.slug for s in incident.services.all()],
    ) == (
        "pagerduty",
        "PGR0VU2",
        "https://acme.pagerduty.com/incidents/PGR0VU2",
        "Checkout latency high",
        "P1",
        1,
        "high",
        "triggered",
        ["payments-api"],
    )
    assert incident.opened_at.isoformat() == "2026-11-30T15:16:27+00:00"
    entry = LedgerEntry.objects.filter(kind="incident.opened").get()
    assert (entry.actor, entry.payload["services"]) == ("pagerduty", ["payments-api"])


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("v1=" + "0" * 64, "signature_invalid"),
        (None, "signature_missing"),
        ("sha1=" + "0" * 40, "signature_invalid"),
        ("v1=", "signature_invalid"),
        ("garbage,,,;;", "signature_invalid"),
    ],
    ids=["wrong", "missing", "sha1-only", "empty-v1", "garbled"],
)
def test_a_bad_or_missing_signature_is_refused_and_changes_nothing(client, pagerduty, header, code):
    before = rows()

    response = deliver(client, pd_event(), signature=header)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert rows() == before


def test_a_sha1_signature_of_the_right_secret_is_still_refused(client, pagerduty):
    raw = json.dumps(pd_event()).encode()
    sha1 = "v1=" + hmac.new(SECRET.encode(), raw, hashlib.sha1).hexdigest()

    assert deliver(client, raw, signature=sha1).status_code == 401
    assert Incident.objects.count() == 0


def test_a_tampered_body_is_refused(client, pagerduty):
    raw = json.dumps(pd_event()).encode()
    signed = pagerduty_signature(SECRET, raw)
    tampered = raw.replace(b"P1", b"P5")

    response = deliver(client, tampered, signature=signed)

    assert response.status_code == 401
    assert Incident.objects.count() == 0


def test_while_rotating_either_secret_verifies_and_pagerduty_sends_both(client, pagerduty):
    services.configure_integration(source="pagerduty", secrets=[SECRET, NEW_SECRET], actor="t")
    raw = json.dumps(pd_event()).encode()
    old_key = pagerduty_signature("a-secret-we-never-had", raw)
    both = f"{old_key},{pagerduty_signature(NEW_SECRET, raw)}"

    assert deliver(client, raw, secret=NEW_SECRET).status_code == 200
    assert (
        deliver(client, pd_event("incident.acknowledged", status="acknowledged")).status_code == 200
    )
    assert deliver(client, raw, signature=both).status_code == 200
    services.configure_integration(source="pagerduty", secrets=[NEW_SECRET], actor="t")
    assert deliver(client, pd_event(), secret=SECRET).status_code == 401


def test_without_configured_secrets_every_delivery_is_refused(client, db):
    response = deliver(client, pd_event())

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_configured"


def test_a_redelivery_with_the_same_webhook_id_changes_nothing(client, pagerduty):
    deliver(client, pd_event(), webhook_id="wh-1")
    deliver(client, pd_event("incident.resolved", status="resolved"), webhook_id="wh-2")
    before = rows()

    # PagerDuty retries the first delivery: replaying it must not reopen the incident.
    response = deliver(client, pd_event(), webhook_id="wh-1")

    assert (response.status_code, response.json()) == (200, {"status": "duplicate"})
    assert rows() == before
    assert Incident.objects.get().status == "resolved"


@pytest.mark.parametrize(
    ("event_type", "data", "expected"),
    [
        ("incident.acknowledged", {"status": "acknowledged"}, ("acknowledged", "P1", "high")),
        ("incident.unacknowledged", {"status": "triggered"}, ("triggered", "P1", "high")),
        ("incident.resolved", {"status": "resolved"}, ("resolved", "P1", "high")),
        (
            "incident.priority_updated",
            {"priority": {"summary": "P3", "type": "priority_reference"}},
            ("triggered", "P3", "high"),
        ),
        ("incident.escalated", {"urgency": "low"}, ("triggered", "P1", "low")),
    ],
)
def test_each_event_type_updates_the_incident_and_is_ledgered(
    client, pagerduty, event_type, data, expected
):
    deliver(client, pd_event())
    if event_type == "incident.unacknowledged":
        deliver(client, pd_event("incident.acknowledged", status="acknowledged"))
    before = LedgerEntry.objects.filter(kind="incident.updated").count()

    response = deliver(client, pd_event(event_type, **data))

    assert (response.status_code, response.json()) == (200, {"status": "updated"})
    incident = Incident.objects.get()
    assert (incident.status, incident.priority, incident.urgency) == expected
    assert LedgerEntry.objects.filter(kind="incident.updated").count() == before + 1


def test_resolving_then_reopening_keeps_the_times(client, pagerduty):
    deliver(client, pd_event())
    deliver(client, pd_event("incident.acknowledged", status="acknowledged"))
    deliver(client, pd_event("incident.resolved", status="resolved"))
    resolved = Incident.objects.get()
    assert resolved.acknowledged_at and resolved.resolved_at

    deliver(client, pd_event("incident.reopened", status="triggered"))

    reopened = Incident.objects.get()
    assert (reopened.status, reopened.resolved_at) == ("triggered", None)
    assert reopened.acknowledged_at == resolved.acknowledged_at
    changed = LedgerEntry.objects.filter(kind="incident.updated").order_by("seq")
    assert [e.payload["changed"]["status"] for e in changed] == [
        ["triggered", "acknowledged"],
        ["acknowledged", "resolved"],
        ["resolved", "triggered"],
    ]


def test_the_same_state_again_writes_no_ledger_entry(client, pagerduty):
    deliver(client, pd_event())
    before = LedgerEntry.objects.count()

    response = deliver(client, pd_event("incident.escalated"))

    assert response.json() == {"status": "updated"}
    assert LedgerEntry.objects.count() == before


def test_events_without_an_incident_are_acknowledged_and_ignored(client, pagerduty):
    body = {"event": {"event_type": "incident.annotated", "data": {"type": "incident_note"}}}

    response = deliver(client, body)

    assert (response.status_code, response.json()) == (200, {"status": "ignored"})
    assert Incident.objects.count() == 0


def test_an_unmapped_pagerduty_service_still_records_the_incident_on_no_service(client, pagerduty):
    deliver(client, pd_event(service={"id": "PUNKNOWN", "type": "service_reference"}))

    assert list(Incident.objects.get().services.all()) == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"event": "x"}',
        json.dumps(pd_event(status="exploded")).encode(),
        json.dumps(pd_event(id="")).encode(),
        json.dumps(pd_event(title="nul \u0000 here")).encode(),
        json.dumps({"event": {"event_type": "incident.triggered", "data": []}}).encode(),
    ],
    ids=["not-json", "no-event-object", "bad-status", "no-id", "nul", "data-not-object"],
)
def test_signed_bad_input_is_a_400_and_writes_nothing(client, pagerduty, body):
    before = rows()

    response = deliver(client, body)

    assert response.status_code == 400
    assert response.json()["error"]["message"]
    assert rows() == before


def test_only_post_is_allowed(client, pagerduty):
    assert client.get("/integrations/pagerduty/").status_code == 405


def test_a_body_over_the_size_limit_is_a_413_that_writes_nothing(client, pagerduty, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    before = rows()

    response = deliver(client, pd_event(title="x" * 2000))

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert rows() == before

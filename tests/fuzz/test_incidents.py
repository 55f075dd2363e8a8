"""Incidents from outside: PagerDuty V3 webhooks (`changes.incidents.services.
ingest_pagerduty_event` and the signed endpoint) and `POST /api/v1/incidents/`."""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from hypothesis import example, given
from hypothesis import strategies as st

from changes.exceptions import InvalidIncident
from changes.incidents import services
from changes.incidents.models import Incident, WebhookDelivery
from changes.incidents.signatures import pagerduty_signature
from tests import factories
from tests.changes.incidents.conftest import PD_SERVICE, SECRET, pd_event
from tests.fuzz.helpers import (
    ENDPOINT,
    assert_api_error,
    bodies,
    documents,
    fingerprint,
    storable,
    timestamps,
)

pytestmark = pytest.mark.django_db
TABLES = (Incident, Incident.services.through, WebhookDelivery)
EVENT_TYPES = st.sampled_from(["incident.triggered", "incident.resolved", "incident.annotated"])
EVENTS = st.builds(pd_event, EVENT_TYPES, created_at=timestamps)
# Stored by PostgreSQL as a year before 1, which reading the row back could not turn into a
# Python datetime (a 500).
BEFORE_YEAR_ONE = "0001-01-01T00:00:00+01:00"
REPORT = {
    "external_id": "INC-4711",
    "title": "Checkout latency high",
    "url": "https://status.example.com/incidents/4711",
    "priority": "P1",
    "urgency": "high",
    "status": "triggered",
    "services": ["payments-api"],
    "opened_at": "2026-12-07T09:15:00Z",
}


@pytest.fixture
def pagerduty(service):
    services.configure_integration(source="pagerduty", secrets=[SECRET], actor="test")
    services.map_external_service(
        source="pagerduty", external_id=PD_SERVICE, service=service, actor="test"
    )


@ENDPOINT
@given(payload=documents(EVENTS).filter(storable), delivery=st.text(max_size=20))
@example(payload=pd_event(created_at="2026-02-30T15:16:27Z"), delivery="")  # a 500 before
@example(payload=pd_event(), delivery="wh-\x00")  # a 500 before: PostgreSQL refuses NUL
@example(payload=pd_event(created_at=BEFORE_YEAR_ONE), delivery="")  # unreadable once stored
def test_a_pagerduty_event_is_recorded_or_refused_with_nothing_written(
    pagerduty, payload, delivery
):
    before = fingerprint(*TABLES)

    try:
        with transaction.atomic():
            outcome = services.ingest_pagerduty_event(delivery_id=delivery, payload=payload)
    except InvalidIncident as exc:
        assert isinstance(exc.message, str) and exc.message
        assert fingerprint(*TABLES) == before
    else:
        assert outcome in {"created", "updated", "duplicate", "ignored"}


@ENDPOINT
@given(text=bodies(EVENTS), delivery=st.text(max_size=20))
@example(text=json.dumps(pd_event(created_at=BEFORE_YEAR_ONE)), delivery="wh-1")
def test_a_signed_pagerduty_delivery_is_recorded_or_refused_with_nothing_written(
    client, pagerduty, text, delivery
):
    body = text.encode()
    before = fingerprint(*TABLES)

    response = client.post(
        "/integrations/pagerduty/",
        body,
        content_type="application/json",
        HTTP_X_WEBHOOK_ID=delivery,
        HTTP_X_PAGERDUTY_SIGNATURE=pagerduty_signature(SECRET, body),
    )

    answer = assert_api_error(response, {200, 400, 413})
    if response.status_code == 200:
        assert answer["status"] in {"created", "updated", "duplicate", "ignored"}
    else:
        assert fingerprint(*TABLES) == before


@ENDPOINT
@given(body=bodies(st.builds(dict, st.just(REPORT), opened_at=timestamps)))
@example(body=json.dumps({**REPORT, "opened_at": BEFORE_YEAR_ONE}))  # the serializer refuses it
def test_an_incident_reported_through_the_api_is_recorded_or_refused_with_nothing_written(
    org, client, pipeline_bot, body
):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {factories.token_for(pipeline_bot)}"}
    before = fingerprint(*TABLES)

    response = client.post("/api/v1/incidents/", body, content_type="application/json", **headers)

    assert_api_error(response, {200, 201, 400, 413})
    if response.status_code >= 400:
        assert fingerprint(*TABLES) == before

"""PagerDuty deliveries as PagerDuty signs them, and incidents made through the real services."""

from __future__ import annotations

import itertools
import json

import pytest

from changes.incidents import services
from changes.incidents.models import Incident
from changes.incidents.signatures import pagerduty_signature

SECRET = "pd-secret-0123456789abcdef"
NEW_SECRET = "pd-secret-fedcba9876543210"
PD_SERVICE = "PF9KMXH"
_ids = itertools.count(1)


def pd_event(event_type: str = "incident.triggered", **data) -> dict:
    """A V3 webhook body as PagerDuty sends it (trimmed to what matters)."""
    incident = {
        "id": "PGR0VU2",
        "type": "incident",
        "self": "https://api.pagerduty.com/incidents/PGR0VU2",
        "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
        "number": 2,
        "status": "triggered",
        "created_at": "2026-11-30T15:16:27Z",
        "title": "Checkout latency high",
        "service": {"id": PD_SERVICE, "type": "service_reference", "summary": "Payments"},
        "priority": {"id": "PSO75BM", "type": "priority_reference", "summary": "P1"},
        "urgency": "high",
        "resolve_reason": None,
    }
    incident.update(data)
    return {
        "event": {
            "id": f"evt-{next(_ids)}",
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": "2026-11-30T18:45:22.169Z",
            "data": incident,
        }
    }


def deliver(client, body, *, signature: str | None = "auto", secret: str = SECRET, webhook_id=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"HTTP_X_WEBHOOK_ID": webhook_id or f"wh-{next(_ids)}"}
    if signature == "auto":
        signature = pagerduty_signature(secret, raw)
    if signature is not None:
        headers["HTTP_X_PAGERDUTY_SIGNATURE"] = signature
    return client.post("/integrations/pagerduty/", raw, content_type="application/json", **headers)


@pytest.fixture
def pagerduty(db, service):
    """PagerDuty configured with one secret, its service PF9KMXH mapped to payments-api."""
    services.configure_integration(source="pagerduty", secrets=[SECRET], actor="test")
    services.map_external_service(
        source="pagerduty", external_id=PD_SERVICE, service=service, actor="test"
    )


def open_incident(service, *, priority="P1", urgency="high", external_id=None, status="triggered"):
    """An incident reported through the API path's service, as a tool would."""
    incident, _ = services.record_incident(
        report=services.IncidentReport(
            source=Incident.Source.API,
            external_id=external_id or f"INC-{next(_ids)}",
            title="Database failover",
            status=status,
            priority=priority,
            urgency=urgency,
            services=(service,),
        ),
        actor="test",
    )
    return incident


def set_status(incident: Incident, status: str) -> Incident:
    services.record_incident(
        report=services.IncidentReport(
            source=incident.source,
            external_id=incident.external_id,
            title=incident.title,
            status=status,
        ),
        actor="test",
    )
    incident.refresh_from_db()
    return incident

"""ServiceNow records as its Table API shapes them, plain and with display_value=all, and a
configured integration (a token issued, a CI mapped to payments-api)."""

from __future__ import annotations

import json

import pytest

from changes.incidents import services as incidents
from changes.servicenow import services
from changes.servicenow.models import ServiceNowConfig

INSTANCE = "https://acme.service-now.com"
CI = "27d32778c0a8000b00db970eeaa60f16"  # a cmdb_ci sys_id
OTHER_CI = "b0cb50c3c0a8000900893e69d3c5885e"
CHANGE_SYS_ID = "c83c5e5347c12200e0ef563dbb9a7190"
INCIDENT_SYS_ID = "9d385017c611228701d22104cc95c371"
CHANGE_LABELS = {
    "-5": "New",
    "-4": "Assess",
    "-3": "Authorize",
    "-2": "Scheduled",
    "-1": "Implement",
    "0": "Review",
    "3": "Closed",
    "4": "Canceled",
}


def reference(table: str, sys_id: str) -> dict | str:
    if not sys_id:
        return ""
    return {"link": f"{INSTANCE}/api/now/table/{table}/{sys_id}", "value": sys_id}


def change_request(**fields) -> dict:
    """A change_request as GET /api/now/table/change_request returns it (plain values)."""
    record = {
        "sys_id": CHANGE_SYS_ID,
        "sys_class_name": "change_request",
        "sys_updated_on": "2026-12-01 09:00:00",
        "number": "CHG0030001",
        "short_description": "Rotate the payments database credentials",
        "description": "Quarterly rotation.",
        "type": "normal",
        "state": "-2",
        "risk": "2",
        "impact": "2",
        "start_date": "2026-12-10 22:00:00",
        "end_date": "2026-12-10 23:30:00",
        "assigned_to": reference("sys_user", "46d44a5dc0a8010e0000d5c0f5d28e3b"),
        "requested_by": reference("sys_user", "5137153cc611227c000bbd1bd8cd2005"),
        "cmdb_ci": reference("cmdb_ci", CI),
        "business_service": "",
        "implementation_plan": "Run the rotation job.",
        "test_plan": "Log in with the new credentials.",
        "backout_plan": "Restore the previous secret.",
        "close_code": "",
        "close_notes": "",
    }
    record.update(fields)
    return record


def incident(**fields) -> dict:
    record = {
        "sys_id": INCIDENT_SYS_ID,
        "sys_class_name": "incident",
        "sys_updated_on": "2026-12-01 10:00:00",
        "number": "INC0010001",
        "short_description": "Payments API returns 500s",
        "state": "1",
        "priority": "1",
        "opened_at": "2026-12-01 09:55:00",
        "cmdb_ci": reference("cmdb_ci", CI),
        "business_service": "",
    }
    record.update(fields)
    return record


def display_all(record: dict, labels: dict | None = None) -> dict:
    """The same record with sysparm_display_value=all: every field {display_value, value}."""
    labels = labels or {}
    shaped = {}
    for name, field in record.items():
        if isinstance(field, dict):  # a reference: the name a person reads, link and sys_id
            shaped[name] = {"display_value": labels.get(name, f"Name of {name}"), **field}
        elif name in ("assigned_to", "requested_by", "cmdb_ci", "business_service"):
            shaped[name] = {"display_value": "", "link": "", "value": ""}
        else:
            shaped[name] = {"display_value": labels.get(name, field), "value": field}
    if "state" in record and "state" not in labels and record.get("sys_class_name") != "incident":
        shaped["state"]["display_value"] = CHANGE_LABELS.get(record["state"], record["state"])
    return shaped


@pytest.fixture
def token(db, service) -> str:
    """ServiceNow configured: a token issued, its instance set, CI mapped to payments-api."""
    issued = services.issue_token(actor="test")
    ServiceNowConfig.objects.update(instance_url=INSTANCE)
    incidents.map_external_service(
        source="servicenow", external_id=CI, service=service, actor="test"
    )
    return issued


def push(client, body, token: str | None, **headers):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if token is not None:
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {token}")
    return client.post("/integrations/servicenow/", raw, content_type="application/json", **headers)

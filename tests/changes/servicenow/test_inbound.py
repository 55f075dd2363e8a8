"""/integrations/servicenow/: the token first, then the body; a refusal writes nothing.

Permission matrix of the endpoint: no token configured, no token sent, a wrong token, a
session instead of a token → 401 and nothing written; the issued token → 200.
"""

from __future__ import annotations

import pytest

from changes.incidents.models import Incident
from changes.records.models import ChangeRecord
from changes.servicenow.models import ServiceNowRecord
from governance.ledger.models import LedgerEntry
from tests.changes.servicenow.conftest import change_request, display_all, incident, push

pytestmark = pytest.mark.django_db


def written() -> tuple[int, int, int, int]:
    return (
        ChangeRecord.objects.count(),
        Incident.objects.count(),
        ServiceNowRecord.objects.count(),
        LedgerEntry.objects.count(),
    )


def test_nothing_is_accepted_before_a_token_is_issued(client, db):
    response = push(client, change_request(), "anything")

    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "not_configured",
            "message": "The ServiceNow integration has no token yet.",
            "fields": {},
        }
    }
    assert written() == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "token_missing"),
        ({"HTTP_AUTHORIZATION": "Bearer "}, "token_missing"),
        ({"HTTP_AUTHORIZATION": "Basic YWRtaW46YWRtaW4="}, "token_missing"),
        ({"HTTP_AUTHORIZATION": "Bearer wrong-token"}, "token_invalid"),
    ],
)
def test_a_missing_or_wrong_token_is_refused_and_nothing_is_written(client, token, headers, code):
    before = written()

    response = push(client, change_request(), None, **headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert written() == before


def test_a_signed_in_administrator_without_the_token_is_refused(client, token, administrator):
    client.force_login(administrator)
    before = written()

    response = push(client, change_request(), None)

    assert response.status_code == 401
    assert written() == before


def test_the_previous_token_stops_working_when_a_new_one_is_issued(client, token):
    from changes.servicenow.services import issue_token

    new = issue_token(actor="test")

    assert push(client, change_request(), token).status_code == 401
    assert push(client, change_request(), new).status_code == 200


def test_only_post_is_allowed(client, token):
    response = client.get("/integrations/servicenow/", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 405


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"{not json", "invalid", "The body is not JSON."),
        (b"\xff\xfe", "invalid", "The body is not JSON."),
        (
            b'{"number": "CHG1\\u0000"}',
            "nul_character",
            "Contains a NUL character (\\u0000), which cannot be stored.",
        ),
        (
            b"[1, 2]",
            "invalid_record",
            "The body is a JSON object: a record, or {table, record|result}.",
        ),
        (b'{"table": "problem", "record": {}}', "invalid_record", None),
        (b'{"number": "CHG1"}', "invalid_record", None),
    ],
)
def test_bad_bodies_are_refused_and_nothing_is_written(client, token, body, code, message):
    before = written()

    response = push(client, body, token)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    if message:
        assert error["message"] == message
    assert written() == before


def test_an_oversize_body_is_refused_with_413(client, token, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    before = written()

    response = push(client, change_request(description="x" * 2000), token)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert written() == before


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("state", "99", "CHG0030001: unknown change state '99'."),
        ("risk", "9", "CHG0030001: unknown risk code '9'."),
        (
            "type",
            "sideways",
            "CHG0030001: type 'sideways' is not one of standard, normal, emergency.",
        ),
        ("start_date", "10/12/2026", "start_date is '10/12/2026', not YYYY-MM-DD HH:MM:SS."),
        (
            "end_date",
            "2026-12-10 21:00:00",
            "CHG0030001: the planned window must have a start and a later end.",
        ),
        ("sys_updated_on", "", "sys_updated_on is required (it orders the updates)."),
        ("sys_id", "not/an/id", "sys_id is letters and digits (32 hex characters in ServiceNow)."),
        ("number", "", "number is required."),
    ],
)
def test_an_invalid_change_request_is_refused_naming_the_field(
    client, token, field, value, message
):
    before = written()

    response = push(client, change_request(**{field: value}), token)

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_record",
        "message": message,
        "fields": {field: [message]},
    }
    assert written() == before


@pytest.mark.parametrize(("field", "value"), [("state", "4"), ("priority", "P1")])
def test_an_invalid_incident_is_refused(client, token, field, value):
    before = written()

    response = push(client, incident(**{field: value}), token)

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]
    assert written() == before


def test_a_table_api_result_list_is_applied_all_or_nothing(client, token):
    good, bad = change_request(), incident(state="42")
    before = written()

    refused = push(client, {"result": [good, bad]}, token)

    assert refused.status_code == 400
    assert written() == before
    accepted = push(client, {"result": [good, display_all(incident())]}, token)
    assert accepted.status_code == 200
    assert accepted.json()["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "stale": 0}
    assert [r["number"] for r in accepted.json()["results"]] == ["CHG0030001", "INC0010001"]


def test_the_record_says_its_table_in_sys_class_name(client, token):
    response = push(client, {"result": display_all(incident())}, token)

    assert response.json()["results"][0]["table"] == "incident"


def test_a_record_of_another_table_than_declared_is_refused(client, token):
    response = push(client, {"table": "change_request", "record": incident()}, token)

    assert response.status_code == 400
    assert "is a 'incident' record, not a change_request" in response.json()["error"]["message"]


def test_a_record_without_table_or_class_is_refused(client, token):
    record = change_request()
    del record["sys_class_name"]

    response = push(client, record, token)

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"table": ["change_request or incident."]}

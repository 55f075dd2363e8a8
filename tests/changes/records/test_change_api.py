"""`/api/v1/changes/`: the pages' rules over the API, errors in its envelope."""

from __future__ import annotations

import pytest

from changes.models import ChangeRecord
from governance.models import LedgerEntry

pytestmark = pytest.mark.django_db

URL = "/api/v1/changes/"


def body(**overrides) -> dict:
    return {
        "title": "Rotate the payments database",
        "services": ["payments-api"],
        "risk": "high",
        "planned_start": "2027-01-12T22:00:00+01:00",
        "planned_end": "2027-01-13T00:00:00+01:00",
        "time_zone": "Europe/Paris",
        "implementer": "dave",
        "backout_plan": "Restore the snapshot.",
        **overrides,
    }


def counts():
    return (ChangeRecord.objects.count(), LedgerEntry.objects.count())


def test_a_release_manager_opens_reads_edits_and_moves_a_change(api, org, requester, approver):
    created = api(requester).post(URL, body(ref="CHG0099001"))

    assert created.status_code == 201, created.json()
    change = created.json()
    assert (change["ref"], change["state"], change["author"], change["implementer"]) == (
        "CHG0099001",
        "new",
        "dave",
        "dave",
    )
    assert change["planned_start"] == "2027-01-12T21:00:00Z"
    assert change["services"] == ["payments-api"] and change["releases"] == []

    edited = api(requester).patch(f"{URL}CHG0099001/", {"risk": "low"})
    assert edited.status_code == 200 and edited.json()["risk"] == "low"
    assert edited.json()["backout_plan"] == "Restore the snapshot."  # what was not given stays

    moved = api(requester).post(f"{URL}CHG0099001/moves/", {"to": "assess", "reason": "Ready."})
    assert moved.status_code == 200 and moved.json()["state"] == "assess"

    listed = api(approver).get(f"{URL}?state=assess").json()
    assert [c["ref"] for c in listed["results"]] == ["CHG0099001"]


def test_a_release_of_the_change_shows_with_its_gate(api, org, requester, pipeline_bot):
    from tests import factories

    api(requester).post(URL, body(ref="CHG0099002"))
    api(pipeline_bot).post(
        "/api/v1/releases/",
        factories.release_body(change={"ref": "CHG0099002", "type": "normal", "title": "x"}),
    )

    change = api(requester).get(f"{URL}CHG0099002/").json()

    assert change["state"] == "authorise"
    [release] = change["releases"]
    assert (release["status"], release["gate"]) == ("pending", "pending")


@pytest.mark.parametrize(
    ("persona", "code"),
    [("approver", 403), ("auditor", 403), ("outsider", 403), ("other_service_approver", 403)],
)
def test_only_release_managers_and_administrators_open_changes(
    api, org, request, persona, code, other_service_approver
):
    before = counts()

    response = api(request.getfixturevalue(persona)).post(URL, body())

    assert response.status_code == code
    assert response.json()["error"]["code"] == "change_forbidden"
    assert counts() == before


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("requester", 200),
        ("approver", 403),
        ("auditor", 403),
        ("outsider", 404),
        ("other_service_approver", 404),
    ],
)
def test_editing_and_moving_need_authority_over_every_service(
    api, org, request, requester, persona, status, other_service_approver
):
    api(requester).post(URL, body(ref="CHG0099003"))
    before = counts()

    edit = api(request.getfixturevalue(persona)).patch(f"{URL}CHG0099003/", {"title": "Mine"})
    move = api(request.getfixturevalue(persona)).post(
        f"{URL}CHG0099003/moves/", {"to": "cancelled", "reason": "No."}
    )

    assert (edit.status_code, move.status_code) == (status, status)
    if status != 200:
        assert counts() == before
        assert ChangeRecord.objects.get(ref="CHG0099003").title == "Rotate the payments database"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"services": ["nowhere"]}, "services"),
        ({"services": []}, "services"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"planned_end": "2027-01-12T20:00:00Z"}, "planned_end"),
        ({"implementer": "nobody-here"}, "implementer"),
        ({"type": "urgent"}, "type"),
        ({"ref": "CHG 1; DROP"}, "ref"),
    ],
)
def test_bad_input_is_refused_in_the_envelope_and_nothing_is_written(
    api, org, requester, change, field
):
    before = counts()

    response = api(requester).post(URL, body(**change))

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert counts() == before


def test_a_taken_ref_and_an_illegal_move_are_refused(api, org, requester):
    api(requester).post(URL, body(ref="CHG0099004"))
    before = counts()

    again = api(requester).post(URL, body(ref="CHG0099004"))
    jump = api(requester).post(f"{URL}CHG0099004/moves/", {"to": "closed", "reason": "Done."})
    not_json = api(requester).patch(f"{URL}CHG0099004/", ["title"])

    assert again.status_code == 400 and "already exists" in again.json()["error"]["message"]
    assert jump.status_code == 409 and jump.json()["error"]["code"] == "change_conflict"
    assert not_json.status_code == 400
    assert counts() == before


def test_signed_out_callers_get_401(client):
    assert client.get(URL).status_code == 401

"""Change requests pushed by ServiceNow upsert the change record, once per sys_updated_on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from approvals import services as approvals
from changes.records.models import ChangeRecord
from governance.ledger.models import LedgerEntry
from tests import factories
from tests.changes.servicenow.conftest import (
    CHANGE_LABELS,
    CHANGE_SYS_ID,
    CI,
    OTHER_CI,
    change_request,
    display_all,
    push,
    reference,
)

pytestmark = pytest.mark.django_db
STATES = {
    "-5": "new",
    "-4": "assess",
    "-3": "authorise",
    "-2": "scheduled",
    "-1": "implement",
    "0": "review",
    "3": "closed",
    "4": "cancelled",
}


def kinds() -> list[str]:
    return list(LedgerEntry.objects.order_by("seq").values_list("kind", flat=True))


@pytest.mark.parametrize("shape", ["plain", "display_value=all"])
def test_a_new_change_request_becomes_a_change_record(client, token, service, shape):
    record = change_request()
    body = record if shape == "plain" else display_all(record)

    response = push(client, {"table": "change_request", "record": body}, token)

    assert response.status_code == 200
    assert response.json()["status"] == "created"
    change = ChangeRecord.objects.get()
    assert (change.ref, change.source, change.external_id) == (
        "CHG0030001",
        "servicenow",
        CHANGE_SYS_ID,
    )
    assert (change.title, change.description, change.type) == (
        "Rotate the payments database credentials",
        "Quarterly rotation.",
        "normal",
    )
    assert (change.state, change.risk, change.impact) == ("scheduled", "high", "moderate")
    assert change.planned_start == datetime(2026, 12, 10, 22, 0, tzinfo=UTC)
    assert change.planned_end == datetime(2026, 12, 10, 23, 30, tzinfo=UTC)
    assert change.time_zone == "UTC"
    assert list(change.services.all()) == [service]
    assert change.implementation_plan == "Run the rotation job."
    assert change.test_plan == "Log in with the new credentials."
    assert change.backout_plan == "Restore the previous secret."
    assert change.external_url == (
        f"https://acme.service-now.com/change_request.do?sys_id={CHANGE_SYS_ID}"
    )
    assert change.external_updated_at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert kinds()[-2:] == ["change.synced", "change.state_changed"]
    synced = LedgerEntry.objects.get(kind="change.synced")
    assert (synced.actor, synced.payload["created"], synced.payload["sys_id"]) == (
        "servicenow",
        True,
        CHANGE_SYS_ID,
    )
    moved = LedgerEntry.objects.get(kind="change.state_changed")
    assert (moved.payload["from"], moved.payload["to"]) == ("new", "scheduled")
    assert (
        moved.payload["reason"] == "ServiceNow CHG0030001 is Scheduled (2026-12-01 09:00:00 UTC)."
    )


@pytest.mark.parametrize(("code", "state"), STATES.items())
@pytest.mark.parametrize("shape", ["plain", "display_value=all"])
def test_every_change_state_code_maps_to_a_state(client, token, code, state, shape):
    record = change_request(state=code)
    body = record if shape == "plain" else display_all(record)

    assert push(client, body, token).json()["status"] == "created"

    change = ChangeRecord.objects.get()
    assert change.state == state
    assert (change.closed_at is not None) is (state in ("closed", "cancelled"))


@pytest.mark.parametrize(
    ("risk", "impact", "expected"),
    [
        ("1", "1", ("high", "high")),
        ("2", "2", ("high", "moderate")),
        ("3", "3", ("moderate", "low")),
        ("4", "1", ("low", "high")),
    ],
)
def test_risk_and_impact_codes(client, token, risk, impact, expected):
    push(client, change_request(risk=risk, impact=impact), token)

    change = ChangeRecord.objects.get()
    assert (change.risk, change.impact) == expected


@pytest.mark.parametrize("kind", ["standard", "normal", "emergency"])
def test_the_change_type_is_kept(client, token, kind):
    push(client, change_request(type=kind), token)

    assert ChangeRecord.objects.get().type == kind


def test_the_same_version_twice_changes_nothing_and_writes_no_ledger_entry(client, token):
    push(client, change_request(), token)
    before = (LedgerEntry.objects.count(), ChangeRecord.objects.get().updated_at)

    response = push(client, display_all(change_request()), token)

    assert response.json()["status"] == "unchanged"
    assert (LedgerEntry.objects.count(), ChangeRecord.objects.get().updated_at) == before


def test_an_older_version_is_stale_and_ignored(client, token):
    push(client, change_request(sys_updated_on="2026-12-02 09:00:00"), token)
    before = LedgerEntry.objects.count()

    response = push(client, change_request(sys_updated_on="2026-12-01 09:00:00", state="4"), token)

    assert response.json()["status"] == "stale"
    assert ChangeRecord.objects.get().state == "scheduled"
    assert LedgerEntry.objects.count() == before


def test_a_newer_version_records_what_changed(client, token):
    push(client, change_request(), token)

    response = push(
        client,
        change_request(
            sys_updated_on="2026-12-01 12:00:00",
            short_description="Rotate credentials (moved)",
            start_date="2026-12-11 22:00:00",
            end_date="2026-12-11 23:00:00",
            state="-1",
        ),
        token,
    )

    assert response.json()["status"] == "updated"
    change = ChangeRecord.objects.get()
    assert (change.title, change.state) == ("Rotate credentials (moved)", "implement")
    synced = LedgerEntry.objects.filter(kind="change.synced").order_by("-seq").first()
    assert synced.payload["changed"] == {
        "title": {"from": "Rotate the payments database credentials", "to": change.title},
        "planned_start": {"from": "2026-12-10T22:00:00+00:00", "to": "2026-12-11T22:00:00+00:00"},
        "planned_end": {"from": "2026-12-10T23:30:00+00:00", "to": "2026-12-11T23:00:00+00:00"},
    }
    assert synced.payload["created"] is False
    moved = LedgerEntry.objects.filter(kind="change.state_changed").order_by("-seq").first()
    assert (moved.payload["from"], moved.payload["to"]) == ("scheduled", "implement")


def test_a_newer_version_saying_nothing_new_is_unchanged_but_remembered(client, token):
    push(client, change_request(), token)
    before = LedgerEntry.objects.count()

    response = push(client, change_request(sys_updated_on="2026-12-01 10:00:00"), token)

    assert response.json()["status"] == "unchanged"
    assert LedgerEntry.objects.count() == before
    change = ChangeRecord.objects.get()
    assert change.external_updated_at == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_closing_keeps_the_close_code_and_notes(client, token):
    push(client, change_request(), token)

    push(
        client,
        change_request(
            sys_updated_on="2026-12-11 08:00:00",
            state="3",
            close_code="successful_issues",
            close_notes="Rotated; one retry.",
        ),
        token,
    )

    change = ChangeRecord.objects.get()
    assert (change.state, change.close_code, change.close_notes) == (
        "closed",
        "successful_issues",
        "Rotated; one retry.",
    )
    assert change.closed_at is not None


def test_a_known_person_assigned_becomes_the_implementer(client, token, requester, approver):
    record = change_request(**{"assigned_to.email": "alice@example.com"})

    push(client, record, token)

    assert ChangeRecord.objects.get().implementer == approver


def test_display_names_that_are_usernames_match_people(client, token, approver, requester):
    labels = {"assigned_to": "alice", "requested_by": "dave"}

    push(client, display_all(change_request(), labels), token)

    change = ChangeRecord.objects.get()
    assert (change.implementer, change.author) == (approver, requester)


def test_the_plain_shape_without_names_leaves_the_implementer_alone(client, token, approver):
    push(client, change_request(**{"assigned_to.user_name": "alice"}), token)

    push(client, change_request(sys_updated_on="2026-12-01 10:00:00"), token)

    assert ChangeRecord.objects.get().implementer == approver


def test_an_unknown_assignee_is_nobody(client, token, approver):
    push(client, display_all(change_request(), {"assigned_to": "Zed Unknown"}), token)

    assert ChangeRecord.objects.get().implementer is None


def test_services_come_from_the_mapped_ci_and_business_service(
    client, token, service, other_service
):
    from changes.incidents.services import map_external_service

    map_external_service(
        source="servicenow", external_id=OTHER_CI, service=other_service, actor="test"
    )

    push(client, change_request(business_service=reference("cmdb_ci_service", OTHER_CI)), token)

    assert set(ChangeRecord.objects.get().services.all()) == {service, other_service}


def test_a_change_opened_by_a_release_is_adopted_and_keeps_its_author(
    client, token, org, service, production, pipeline_bot, requester
):
    release, _ = approvals.request_approval(
        data=factories.release_input(
            service, production, triggered_by="dave", change_ref="CHG0030001"
        ),
        actor=pipeline_bot,
    )
    change = release.change
    assert (change.source, change.author) == ("signoff", requester)

    # ServiceNow says someone else requested it: the author, who may not approve, stays dave.
    labels = {"requested_by": "alice"}
    response = push(client, display_all(change_request(), labels), token)

    assert response.json()["status"] == "updated"
    change.refresh_from_db()
    assert (change.source, change.external_id, change.author) == (
        "servicenow",
        CHANGE_SYS_ID,
        requester,
    )
    assert change.state == "scheduled"
    assert ChangeRecord.objects.count() == 1
    synced = LedgerEntry.objects.get(kind="change.synced")
    assert synced.payload["adopted"] is True
    assert synced.payload["author"] == "dave"
    assert synced.payload["changed"]["source"] == {"from": "signoff", "to": "servicenow"}
    assert requester.pk in release.conflicted_user_ids()


def test_a_number_already_mirrored_from_another_record_is_a_conflict(client, token):
    push(client, change_request(), token)
    before = LedgerEntry.objects.count()

    response = push(client, change_request(sys_id="aaaa1111bbbb2222cccc3333dddd4444"), token)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "record_conflict"
    assert ChangeRecord.objects.count() == 1
    assert LedgerEntry.objects.count() == before


def test_the_labels_ServiceNow_shows_for_states_are_not_trusted(client, token):
    record = display_all(change_request(state="-2"))
    record["state"]["display_value"] = "Closed"  # a user's language or a renamed choice

    push(client, record, token)

    assert ChangeRecord.objects.get().state == "scheduled"
    assert CHANGE_LABELS["-2"] == "Scheduled"


def test_references_sent_as_bare_sys_ids_work_as_a_business_rule_sends_them(
    client, token, service, approver
):
    """`current.getValue('cmdb_ci')` is the sys_id alone; people come dot-walked to an e-mail."""
    record = change_request(
        cmdb_ci=CI,
        assigned_to="46d44a5dc0a8010e0000d5c0f5d28e3b",
        requested_by="5137153cc611227c000bbd1bd8cd2005",
        **{"assigned_to.email": "alice@example.com"},
    )

    push(client, {"table": "change_request", "record": record}, token)

    change = ChangeRecord.objects.get()
    assert list(change.services.all()) == [service]
    assert (change.implementer, change.author) == (approver, None)


def test_a_change_created_meanwhile_with_the_same_number_is_adopted_not_a_500(
    client, token, monkeypatch, requester
):
    """The window between looking the number up and creating the row: a release request that
    creates the change there makes the insert fail; the record is applied again and adopts it."""
    from changes.servicenow import services

    ChangeRecord.objects.create(ref="CHG0030001", title="From the pipeline", author=requester)
    real, calls = services._target_change, []

    def first_misses(record):
        calls.append(record.number)
        return (None, False) if len(calls) == 1 else real(record)

    monkeypatch.setattr(services, "_target_change", first_misses)

    response = push(client, change_request(), token)

    assert response.json()["status"] == "updated"
    assert len(calls) == 2
    change = ChangeRecord.objects.get()
    assert (change.source, change.author) == ("servicenow", requester)
    assert LedgerEntry.objects.get(kind="change.synced").payload["adopted"] is True

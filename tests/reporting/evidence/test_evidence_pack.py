"""Evidence packs: one release with everything about it, as JSON and PDF, for auditors."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals import services
from approvals.services.deployments import record_deployment
from changes.models import Incident
from governance.authority.services import create_delegation
from governance.ledger import export
from governance.ledger import format as ledger_format
from governance.ledger.format import ENTRY_FIELDS
from governance.ledger.services import public_keys
from governance.models import LedgerEntry, Role
from tests import factories
from tests.approvals.emergencies.helpers import declare_for

pytestmark = pytest.mark.django_db


def json_url(release) -> str:
    return reverse("reporting:evidence_json", args=[release.pk])


def pdf_url(release) -> str:
    return reverse("reporting:evidence_pdf", args=[release.pk])


@pytest.fixture
def frank(db):
    return factories.UserFactory(username="frank", first_name="Frank")


@pytest.fixture
def full_release(production_release, approver, second_approver, cab_member, frank, pipeline_bot):
    """Two approver seats (one filled by frank for alice), the CAB, more evidence, a
    deployment and an emergency exception on the change."""
    now = timezone.now()
    create_delegation(
        delegator=approver,
        delegate=frank,
        service=None,
        reason="annual leave",
        actor=approver,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=48),
    )
    release = production_release
    services.add_evidence(
        release=release,
        actor=pipeline_bot,
        kind="sast",
        status="passed",
        summary={"high": 0},
        url="https://ci.example.com/sast/1",
    )
    declare_for(release)
    factories.decide(release, frank, rationale="Tests green, for Alice.")
    factories.decide(release, second_approver, rationale="Rollback plan checked.")
    factories.decide(release, cab_member, rationale="CAB agrees.")
    record_deployment(release=release, actor=pipeline_bot, status="succeeded")
    return release


def signed_in(client, user):
    client.force_login(user)
    return client


def test_the_pack_holds_each_part_of_the_release(client, full_release, auditor):
    response = signed_in(client, auditor).get(json_url(full_release))

    assert response.status_code == 200
    pack = response.json()
    assert list(pack)[:3] == ["format", "generated_at", "generated_by"]
    assert (pack["format"], pack["generated_by"]) == ("signoff-evidence-pack/1", "erin")
    release = pack["release"]
    assert release["service"]["slug"] == "payments-api"
    assert release["environment"]["slug"] == "production"
    assert release["digest"] == full_release.digest
    assert (release["requested_by"], release["triggered_by"]) == ("ci-bot", "dave")
    assert pack["change"]["ref"] == full_release.change.ref
    assert pack["approval"]["status"] == "approved"
    assert pack["approval"]["policy"]["slug"] == "default"
    assert pack["approval"]["matched_rules"]
    assert [(e["kind"], e["status"]) for e in pack["evidence"]] == [
        ("tests", "passed"),
        ("sast", "passed"),
    ]
    assert pack["evidence"][1]["reported_by"] == "ci-bot"
    decisions = [
        (d["approver"], d["on_behalf_of"], d["verdict"], d["rationale"])
        for stage in pack["stages"]
        for d in stage["decisions"]
    ]
    assert ("frank", "alice", "approve", "Tests green, for Alice.") in decisions
    assert ("bob", None, "approve", "Rollback plan checked.") in decisions
    assert len(pack["stages"]) >= 2
    deployment = pack["deployments"][0]
    assert (deployment["status"], deployment["approved"]) == ("succeeded", True)
    assert deployment["digest"] == full_release.digest
    exception = pack["exceptions"][0]
    assert exception["declared_by"] == "emil"
    assert exception["retro_review"]["outcome"] == "pending"
    assert pack["gate"]["current"]["status"] == "approved"
    history = [entry["kind"] for entry in pack["gate"]["history"]]
    assert "approval.requested" in history and "gate.transition" in history
    assert "deployment.reported" in history


def test_each_ledger_entry_matches_the_stored_one_and_verifies_offline(
    client, full_release, auditor
):
    pack = signed_in(client, auditor).get(json_url(full_release)).json()

    entries = pack["ledger"]["entries"]
    subjects = {f"release:{full_release.pk}", f"change:{full_release.change_id}"}
    stored = LedgerEntry.objects.filter(subject__in=subjects).order_by("seq")
    assert [e["seq"] for e in entries] == [row.seq for row in stored]
    assert {e["subject"] for e in entries} == subjects
    keys = {
        key_id: ledger_format.load_public_key(text)
        for key_id, text in pack["ledger"]["public_keys"].items()
    }
    assert set(keys) == set(public_keys())
    for entry, row in zip(entries, stored, strict=True):
        assert list(entry) == list(ENTRY_FIELDS)
        assert entry["entry_hash"] == row.entry_hash and entry["signature"] == row.signature
        checked = ledger_format.verify_entries(
            [entry], keys, after_seq=entry["seq"] - 1, after_hash=entry["prev_hash"]
        )
        assert list(checked) == [entry["seq"]]


def test_an_altered_entry_in_a_pack_fails_offline_verification(client, full_release, auditor):
    pack = signed_in(client, auditor).get(json_url(full_release)).json()
    entry = next(e for e in pack["ledger"]["entries"] if e["kind"] == "decision.recorded")
    entry["payload"]["verdict"] = "reject"
    keys = {k: ledger_format.load_public_key(v) for k, v in pack["ledger"]["public_keys"].items()}

    [problem] = ledger_format.verify_entries(
        [entry], keys, after_seq=entry["seq"] - 1, after_hash=entry["prev_hash"]
    )

    assert "altered" in problem.message


def test_the_pdf_shows_every_section_and_the_digest(client, full_release, auditor, tmp_path):
    response = signed_in(client, auditor).get(pdf_url(full_release))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    path = tmp_path / "pack.pdf"
    path.write_bytes(response.content)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    for heading in (
        "Release",
        "Change record",
        "Approval plan and policy",
        "Evidence",
        "Stages and decisions",
        "Gate",
        "Deployments",
        "Exceptions",
        "Incidents",
        "Ledger entries",
    ):
        assert heading in text
    assert full_release.digest in text
    assert "Page 2" in text


def test_the_pack_reads_a_fixed_number_of_queries(
    client, production_release, auditor, django_assert_num_queries, second_approver, pipeline_bot
):
    signed_in(client, auditor)
    with django_assert_num_queries(QUERIES):
        client.get(json_url(production_release))
    factories.decide(production_release, second_approver)
    for number in range(5):
        services.add_evidence(
            release=production_release,
            actor=pipeline_bot,
            kind=f"scan-{number}",
            status="passed",
            summary={},
        )
    with django_assert_num_queries(QUERIES):
        client.get(json_url(production_release))


QUERIES = 13


# --- Who may fetch a pack ----------------------------------------------------------------------


@pytest.mark.parametrize("url", [json_url, pdf_url])
def test_anonymous_people_are_sent_to_sign_in(client, production_release, url):
    response = client.get(url(production_release))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("url", [json_url, pdf_url])
def test_people_without_the_auditor_role_are_refused(
    client, production_release, approver, administrator, url
):
    for person in (approver, administrator):
        assert signed_in(client, person).get(url(production_release)).status_code == 403


def test_a_scoped_auditor_sees_their_services_and_nothing_else(
    client, production_release, other_service, production, requester, pipeline_bot
):
    scoped = factories.UserFactory(username="sam")
    factories.grant(scoped, Role.AUDITOR, production_release.service)
    signed_in(client, scoped)

    assert client.get(json_url(production_release)).status_code == 200
    other, _ = services.request_approval(
        data=factories.release_input(other_service, production), actor=pipeline_bot
    )
    assert client.get(json_url(other)).status_code == 404
    assert client.get(pdf_url(other)).status_code == 404


def test_an_unknown_release_is_not_found(client, auditor):
    assert (
        signed_in(client, auditor).get("/reports/releases/999999/evidence.json").status_code == 404
    )


def test_an_auditor_token_fetches_the_pack_and_a_bad_token_gets_401(
    client, production_release, auditor
):
    token = factories.token_for(auditor)
    response = client.get(json_url(production_release), HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert json.loads(response.content)["generated_by"] == "erin"

    refused = client.get(json_url(production_release), HTTP_AUTHORIZATION="Bearer not-a-token")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "not_authenticated"


def test_the_release_page_links_auditors_to_the_pack(client, production_release, auditor, approver):
    page = reverse("approvals:release_detail", args=[production_release.pk])

    shown = signed_in(client, auditor).get(page).content.decode()
    hidden = signed_in(client, approver).get(page).content.decode()

    assert f'href="{pdf_url(production_release)}"' in shown
    assert f'href="{json_url(production_release)}"' in shown
    assert "Evidence pack" not in hidden


def test_the_pack_lists_incidents_of_the_service_open_during_the_release(
    client, production_release, auditor, other_service
):
    requested = production_release.created_at

    def incident(external_id, service, opened, resolved=None):
        found = Incident.objects.create(
            source="api",
            external_id=external_id,
            title=f"Incident {external_id}",
            severity=2,
            status="resolved" if resolved else "triggered",
            opened_at=opened,
            resolved_at=resolved,
        )
        found.services.add(service)

    hour = timedelta(hours=1)
    incident("during", production_release.service, requested - hour)
    incident("before", production_release.service, requested - 3 * hour, requested - 2 * hour)
    incident("elsewhere", other_service, requested - hour)

    pack = signed_in(client, auditor).get(json_url(production_release)).json()

    assert [i["external_id"] for i in pack["incidents"]] == ["during"]
    assert pack["incidents"][0]["status"] == "triggered"


def test_each_entry_in_the_pack_is_the_line_of_the_ledger_export(client, full_release, auditor):
    pack = signed_in(client, auditor).get(json_url(full_release)).json()
    header, *lines = export.export_lines()
    exported = {entry["seq"]: entry for entry in map(json.loads, lines)}

    for entry in pack["ledger"]["entries"]:
        assert entry == exported[entry["seq"]]
    assert pack["ledger"]["public_keys"] == json.loads(header)["public_keys"]

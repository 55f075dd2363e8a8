"""The audit trail: ledger events and configuration changes in one list, newest first, filtered
and paged by keyset, for auditors of the whole organisation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from approvals import services
from governance.models import LedgerEntry, Role, RoleAssignment, Service
from tests import factories

pytestmark = pytest.mark.django_db
URL = "/reports/audit/"


def refs(response) -> list[str]:
    return [row.ref for row in response.context["rows"]]


def expected_refs(ledger=None, logs=None) -> list[str]:
    """Every row the trail should show, newest first, from the database directly."""
    ledger = LedgerEntry.objects.all() if ledger is None else ledger
    logs = LogEntry.objects.all() if logs is None else logs
    rows = [((e.recorded_at, 1, e.seq), f"ledger:{e.seq}") for e in ledger]
    rows += [((log.timestamp, 0, log.pk), f"log:{log.pk}") for log in logs]
    return [ref for _, ref in sorted(rows, reverse=True)]


@pytest.fixture
def trail(client, auditor):
    client.force_login(auditor)
    return client


@pytest.fixture
def billing_release(other_service, production, pipeline_bot):
    release, _ = services.request_approval(
        data=factories.release_input(other_service, production), actor=pipeline_bot
    )
    return release


@pytest.fixture
def history(production_release, billing_release, approver, staging, pipeline_bot):
    """Two releases (payments-api and billing to production), alice's approval, a staging
    release of payments-api, and the configuration history the fixtures wrote."""
    factories.decide(production_release, approver, rationale="Checked the diff.")
    services.request_approval(
        data=factories.release_input(production_release.service, staging), actor=pipeline_bot
    )
    return production_release


def test_the_trail_merges_ledger_events_and_configuration_changes_newest_first(trail, history):
    response = trail.get(URL)

    assert response.status_code == 200
    assert refs(response) == expected_refs()[:50]
    kinds = {row.kind for row in response.context["rows"]}
    assert "decision.recorded" in kinds
    assert "configuration change (created)" in kinds


def test_a_release_event_links_to_the_release_page_and_shows_its_seq_and_hash(trail, history):
    entry = LedgerEntry.objects.get(kind="decision.recorded")

    page = trail.get(URL, {"kind": "decision.recorded"}).content.decode()

    assert f'href="/approvals/releases/{history.pk}/"' in page
    assert f"#{entry.seq}" in page and f'title="{entry.entry_hash}"' in page
    assert "rationale: Checked the diff." in page


def test_a_change_event_links_to_the_change_page(trail, history):
    entry = LedgerEntry.objects.filter(subject=f"change:{history.change_id}").first()

    response = trail.get(URL, {"kind": entry.kind})

    row = next(row for row in response.context["rows"] if row.ref == f"ledger:{entry.seq}")
    assert row.url == f"/changes/{history.change_id}/"


def test_a_configuration_change_links_to_its_admin_page(trail, history, approver):
    assignment = RoleAssignment.objects.filter(user=approver).first()
    log = LogEntry.objects.get_for_object(assignment).get()

    response = trail.get(URL, {"kind": "configuration"})

    row = next(row for row in response.context["rows"] if row.ref == f"log:{log.pk}")
    assert row.url == reverse("admin:governance_roleassignment_change", args=[assignment.pk])
    assert row.who == "system"


def test_the_service_filter_keeps_its_events_and_its_configuration(trail, history, service):
    response = trail.get(URL, {"service": "payments-api"})

    rows = response.context["rows"]
    ledger = LedgerEntry.objects.filter(payload__service="payments-api")
    assignments = RoleAssignment.objects.filter(service=service)
    logs = LogEntry.objects.filter(
        Q(content_type__model="service", object_id=service.pk)
        | Q(content_type__model="roleassignment", object_id__in=assignments.values("pk"))
    )
    assert refs(response) == expected_refs(ledger, logs)[:50]
    assert "billing" not in " ".join(row.summary for row in rows)
    assert {row.kind for row in rows} >= {"approval.requested", "decision.recorded"}


def test_the_service_filter_finds_the_history_of_a_deleted_role_assignment(
    trail, history, service, administrator
):
    assignment = RoleAssignment.objects.filter(service=service).first()
    assignment_pk = assignment.pk
    assignment.delete()
    deleted = LogEntry.objects.get(object_id=assignment_pk, action=LogEntry.Action.DELETE)

    response = trail.get(URL, {"service": "payments-api", "kind": "configuration"})

    assert f"log:{deleted.pk}" in refs(response)


def test_the_environment_filter(trail, history, staging):
    response = trail.get(URL, {"environment": "staging"})

    ledger = LedgerEntry.objects.filter(payload__environment="staging")
    logs = LogEntry.objects.get_for_object(staging)
    assert refs(response) == expected_refs(ledger, logs)
    assert any(row.kind == "approval.requested" for row in response.context["rows"])


def test_the_person_filter(trail, history, administrator, approver):
    factories.grant(approver, Role.CAB_MEMBER)
    LogEntry.objects.filter(actor__isnull=True).update(actor=administrator)

    response = trail.get(URL, {"person": "alice"})

    assert refs(response) == expected_refs(LedgerEntry.objects.filter(actor="alice"), [])
    assert (
        refs(trail.get(URL, {"person": "ada", "kind": "configuration"}))[:50]
        == (expected_refs([], LogEntry.objects.all())[:50])
    )


def test_the_kind_filter(trail, history):
    decisions = trail.get(URL, {"kind": "decision.recorded"})
    configuration = trail.get(URL, {"kind": "configuration"})

    assert refs(decisions) == expected_refs(
        LedgerEntry.objects.filter(kind="decision.recorded"), []
    )
    assert refs(configuration) == expected_refs([], LogEntry.objects.all())[:50]


def test_the_period_filter(trail, history):
    today = timezone.now().date()
    old = LogEntry.objects.order_by("pk").first()
    LogEntry.objects.filter(pk=old.pk).update(timestamp=timezone.now() - timedelta(days=30))
    a_month_ago = (today - timedelta(days=30)).isoformat()

    in_period = trail.get(URL, {"start": today.isoformat(), "end": today.isoformat()})
    before = trail.get(URL, {"start": a_month_ago, "end": a_month_ago})
    after = trail.get(URL, {"start": (today + timedelta(days=1)).isoformat()})

    assert refs(in_period) == expected_refs(logs=LogEntry.objects.exclude(pk=old.pk))[:50]
    assert refs(before) == [f"log:{old.pk}"]
    assert refs(after) == []


@pytest.mark.parametrize(
    "query, message",
    [
        ({"older": "12.abc"}, "This page link is damaged"),
        ({"newer": "1.2"}, "This page link is damaged"),
        ({"older": "*.*.*", "newer": "*.*.*"}, "one direction"),
        ({"older": "1.99999999999999999999.1"}, "out of range"),
        ({"start": "2026-13-01"}, "Enter a valid date"),
        ({"start": "2026-12-02", "end": "2026-12-01"}, "ends before it starts"),
        ({"service": "no-such-service"}, "Select a valid choice"),
        ({"kind": "no.such.kind"}, "Select a valid choice"),
    ],
)
def test_bad_input_is_refused_with_a_message(trail, history, query, message):
    response = trail.get(URL, query)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert response.context["rows"] == []


# --- Keyset paging -----------------------------------------------------------------------------


@pytest.fixture
def tied_history(history):
    """Configuration changes stamped exactly at the times of ledger entries and of each other,
    so that page boundaries fall between rows sharing a timestamp."""
    entries = list(LedgerEntry.objects.order_by("seq"))
    logs = list(LogEntry.objects.order_by("pk"))
    for index, log in enumerate(logs):
        at = entries[(index // 3) % len(entries)].recorded_at
        LogEntry.objects.filter(pk=log.pk).update(timestamp=at)
    return history


def walk(client, query: dict, direction: str, start: str | None = None) -> list[list[str]]:
    """Follow the `direction` links from `start` (or the first page) to the end."""
    pages, link = [], start or f"{URL}?" + "&".join(f"{k}={v}" for k, v in query.items())
    while link:
        response = client.get(link if link.startswith("/") else URL + link)
        assert response.status_code == 200
        pages.append(refs(response))
        link = response.context[direction]
    return pages


@pytest.mark.parametrize("query", [{}, {"service": "payments-api"}, {"kind": "configuration"}])
def test_paging_older_then_newer_shows_every_row_once(trail, tied_history, settings, query):
    settings.SIGNOFF_AUDIT_PAGE_SIZE = 4
    everything = trail.get(URL, query)
    settings.SIGNOFF_AUDIT_PAGE_SIZE = 10_000
    expected = refs(trail.get(URL, query))
    settings.SIGNOFF_AUDIT_PAGE_SIZE = 4

    older = walk(trail, query, "older")

    assert [ref for page in older for ref in page] == expected
    assert all(len(page) == 4 for page in older[:-1])
    assert older[0] == refs(everything)
    last = trail.get(URL, query)
    while last.context["older"]:
        last = trail.get(URL + last.context["older"])
    newer = walk(trail, query, "newer", start=last.context["newer"])
    assert list(reversed(newer)) == older[:-1]


def test_the_first_page_has_no_newer_link_and_the_last_no_older(trail, history, settings):
    settings.SIGNOFF_AUDIT_PAGE_SIZE = 5
    first = trail.get(URL, {"kind": "decision.recorded"})

    assert first.context["newer"] is None and first.context["older"] is None
    assert len(refs(first)) == 1


# --- Cost ----------------------------------------------------------------------------------------


def test_the_page_reads_a_fixed_number_of_queries(
    trail, production_release, approver, django_assert_num_queries, pipeline_bot, staging
):
    filtered = {"service": "payments-api", "person": "ci-bot", "start": "2026-01-01"}
    trail.get(URL, filtered)  # warm the caches every page shares (content types)
    with django_assert_num_queries(QUERIES):
        trail.get(URL, filtered)
    for _ in range(6):
        services.request_approval(
            data=factories.release_input(production_release.service, staging), actor=pipeline_bot
        )
    factories.decide(production_release, approver)
    with django_assert_num_queries(QUERIES):
        trail.get(URL, filtered)
    with django_assert_num_queries(QUERIES - 2):
        trail.get(URL)


QUERIES = 11


# --- Who may read the trail ----------------------------------------------------------------------


def test_anonymous_people_are_sent_to_sign_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_only_auditors_of_the_whole_organisation_read_the_trail(
    client, service, approver, administrator, outsider
):
    scoped = factories.UserFactory(username="sam")
    factories.grant(scoped, Role.AUDITOR, service)
    for person in (outsider, approver, administrator, scoped):
        client.force_login(person)
        assert client.get(URL).status_code == 403


def test_an_auditor_token_reads_the_trail_and_a_bad_token_gets_401(client, auditor):
    token = factories.token_for(auditor)
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200

    refused = client.get(URL, HTTP_AUTHORIZATION="Bearer not-a-token")

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "not_authenticated"
    assert Service.objects.count() == 0


def test_a_configuration_change_is_summarised_field_by_field(trail, service):
    service.tier = 2
    service.save()

    response = trail.get(URL, {"service": "payments-api", "kind": "configuration"})

    update, created = response.context["rows"][0], response.context["rows"][-1]
    assert update.kind == "configuration change (updated)"
    assert update.summary == "tier: 1 → 2"
    assert update.about == "service: payments-api"
    assert created.kind == "configuration change (created)"
    assert "slug: payments-api" in created.summary and "None" not in created.summary

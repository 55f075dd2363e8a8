"""The change pages: who sees and writes what, the page's panels, refusals that write nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from changes.models import ChangeRecord, Incident
from changes.records.services import ChangeInput, open_change
from governance.models import LedgerEntry
from tests import factories

pytestmark = pytest.mark.django_db

SEES = ["requester", "approver", "auditor", "administrator"]
BLIND = ["outsider", "other_service_approver"]
WRITERS = ["requester", "administrator"]
READERS_ONLY = ["approver", "auditor", "outsider", "other_service_approver"]


@pytest.fixture
def people(requester, approver, auditor, administrator, outsider, other_service_approver):
    return {
        "requester": requester,
        "approver": approver,
        "auditor": auditor,
        "administrator": administrator,
        "outsider": outsider,
        "other_service_approver": other_service_approver,
    }


@pytest.fixture
def change(org, requester, service):
    start = timezone.now() + timedelta(days=2)
    return open_change(
        data=ChangeInput(
            title="Rotate the payments database",
            services=[service],
            planned_start=start,
            planned_end=start + timedelta(hours=2),
            time_zone="Europe/Paris",
            implementation_plan="Fail over, rotate, fail back.",
        ),
        actor=requester,
    )


def signed_in(client, user):
    client.force_login(user)
    return client


def counts():
    return (ChangeRecord.objects.count(), LedgerEntry.objects.count())


def test_signed_out_people_are_sent_to_sign_in(client, change):
    for url in (
        reverse("changes:change_list"),
        reverse("changes:change_detail", args=[change.pk]),
        reverse("changes:change_create"),
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("persona", SEES + BLIND)
def test_the_list_shows_the_changes_of_the_services_one_may_see(client, people, change, persona):
    response = signed_in(client, people[persona]).get(reverse("changes:change_list"))

    assert response.status_code == 200
    assert (change.ref in response.content.decode()) is (persona in SEES)


@pytest.mark.parametrize("persona", SEES + BLIND)
def test_a_change_page_is_seen_by_those_who_see_its_services(client, people, change, persona):
    response = signed_in(client, people[persona]).get(
        reverse("changes:change_detail", args=[change.pk])
    )

    assert response.status_code == (200 if persona in SEES else 404)


@pytest.mark.parametrize("persona", WRITERS + READERS_ONLY)
def test_only_release_managers_and_administrators_open_changes(client, people, service, persona):
    client = signed_in(client, people[persona])
    before = counts()

    page = client.get(reverse("changes:change_create"))
    response = client.post(
        reverse("changes:change_create"),
        {
            "title": "New one",
            "type": "normal",
            "risk": "low",
            "impact": "low",
            "services": [service.pk],
            "time_zone": "UTC",
        },
    )

    if persona in WRITERS:
        assert page.status_code == 200
        assert response.status_code == 302
        assert ChangeRecord.objects.get(title="New one").author == people[persona]
    else:
        assert (page.status_code, response.status_code) == (404, 404)
        assert counts() == before


@pytest.mark.parametrize("persona", WRITERS + READERS_ONLY)
def test_only_writers_edit_and_move_a_change(client, people, change, service, persona):
    client = signed_in(client, people[persona])
    before = counts()

    edit = client.post(
        reverse("changes:change_edit", args=[change.pk]),
        {
            "title": "Renamed",
            "type": "normal",
            "risk": "high",
            "impact": "low",
            "services": [service.pk],
            "time_zone": "UTC",
        },
    )
    move = client.post(
        reverse("changes:change_move", args=[change.pk]),
        {"to": "assess", "reason": "Ready."},
    )

    change.refresh_from_db()
    if persona in WRITERS:
        assert (edit.status_code, move.status_code) == (302, 302)
        assert (change.title, change.risk, change.state) == ("Renamed", "high", "assess")
    else:
        assert (edit.status_code, move.status_code) == (404, 404)
        assert (change.title, change.state) == ("Rotate the payments database", "new")
        assert counts() == before


def test_a_bad_window_is_shown_on_the_form_and_nothing_is_saved(client, requester, change, service):
    before = counts()

    response = signed_in(client, requester).post(
        reverse("changes:change_edit", args=[change.pk]),
        {
            "title": "Renamed",
            "type": "normal",
            "risk": "low",
            "impact": "low",
            "services": [service.pk],
            "time_zone": "Europe/Paris",
            "planned_start": "2027-03-28T02:30",
            "planned_end": "2027-03-28T04:00",
        },
    )

    assert response.status_code == 400
    assert "does not exist in Europe/Paris" in response.content.decode()
    assert counts() == before


def test_the_change_page_shows_window_releases_incidents_conflicts_and_history(
    client, org, requester, approver, service, production, pipeline_bot, change
):
    from approvals import services

    services.request_approval(
        data=factories.release_input(service, production, change_ref=change.ref),
        actor=pipeline_bot,
    )
    incident = Incident.objects.create(
        source="api",
        external_id="INC-7",
        title="Card payments failing",
        priority="P1",
        severity=1,
        status="triggered",
    )
    incident.services.add(service)
    open_change(
        data=ChangeInput(
            title="Overlapping",
            services=[service],
            planned_start=change.planned_start + timedelta(minutes=30),
            planned_end=change.planned_end,
        ),
        actor=requester,
    )

    page = signed_in(client, approver).get(reverse("changes:change_detail", args=[change.pk]))

    html = page.content.decode()
    local = change.planned_start.astimezone(change.zone)
    assert f"{local:%Y-%m-%d %H:%M}" in html and "Europe/Paris" in html
    assert "payments-api" in html.lower() and "→ Production" in html
    assert "Card payments failing" in html and "holds releases" in html
    assert "Overlapping" in html or "SO-CHG-000002" in html
    assert "change.opened" in html and "change.state_changed" in html
    assert "Fail over, rotate, fail back." in html
    assert f'href="/changes/{change.pk}/edit/"' not in html  # alice only reads


def test_the_list_filters_and_searches(client, requester, change, service):
    open_change(
        data=ChangeInput(title="Upgrade the web tier", services=[service], risk="high"),
        actor=requester,
    )
    client = signed_in(client, requester)

    def refs(**query):
        html = client.get(reverse("changes:change_list"), query).content.decode()
        return [ref for ref in ("SO-CHG-000001", "SO-CHG-000002") if ref in html]

    assert refs() == ["SO-CHG-000001", "SO-CHG-000002"]
    assert refs(q="web tier") == ["SO-CHG-000002"]
    assert refs(risk="high") == ["SO-CHG-000002"]
    assert refs(state="new", service="payments-api") == ["SO-CHG-000001", "SO-CHG-000002"]
    assert refs(state="nonsense") == ["SO-CHG-000001", "SO-CHG-000002"]  # ignored, not an error


def test_a_conflict_with_a_change_on_a_service_one_may_not_see_is_not_named(
    client, org, requester, approver, auditor, service, change
):
    billing = factories.ServiceFactory(slug="billing", team=factories.TeamFactory(slug="billing"))
    service.depends_on.add(billing)
    bill = factories.UserFactory(username="bill")
    factories.grant(bill, "release_manager", billing)

    open_change(
        data=ChangeInput(
            title="Secret billing migration",
            services=[billing],
            planned_start=change.planned_start,
            planned_end=change.planned_end,
        ),
        actor=bill,
    )

    url = reverse("changes:change_detail", args=[change.pk])
    html = signed_in(client, approver).get(url).content.decode()
    auditor_html = signed_in(client, auditor).get(url).content.decode()

    assert "Secret billing migration" not in html
    assert "on a service you may not see" in html
    assert "Secret billing migration" in auditor_html  # auditors see every service

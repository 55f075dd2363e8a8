"""The freeze pages and the override box on the release page: who may open them, what they
save, and what bad input leaves behind (nothing)."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.utils import timezone

from changes.models import Freeze, FreezeOverride
from governance.models import LedgerEntry


@pytest.fixture
def freeze(make_freeze):
    return make_freeze(name="Quarter close")


def form_data(production, **overrides) -> dict:
    data = {
        "name": "Weekend",
        "kind": "hard",
        "time_zone": "Europe/Berlin",
        "start": "2026-12-04T18:00",
        "end": "2026-12-07T06:00",
        "recurrence": "FREQ=WEEKLY",
        "exdates": "2026-12-25T18:00:00",
        "environments": [production.pk],
        "reason": "No weekend releases",
    }
    data.update(overrides)
    return data


def pages(freeze) -> list[tuple[str, str]]:
    return [
        ("get", "/changes/freezes/"),
        ("get", "/changes/freezes/new/"),
        ("get", f"/changes/freezes/{freeze.pk}/"),
        ("get", f"/changes/freezes/{freeze.pk}/edit/"),
        ("post", f"/changes/freezes/{freeze.pk}/end/"),
        ("post", "/changes/freezes/new/"),
        ("post", f"/changes/freezes/{freeze.pk}/edit/"),
    ]


@pytest.mark.parametrize("persona", ["approver", "requester", "auditor", "outsider"])
def test_only_administrators_open_the_freeze_pages(client, request, freeze, persona):
    client.force_login(request.getfixturevalue(persona))
    ledger = LedgerEntry.objects.count()

    statuses = {url: getattr(client, method)(url).status_code for method, url in pages(freeze)}

    assert set(statuses.values()) == {403}
    assert LedgerEntry.objects.count() == ledger
    assert Freeze.objects.get().ended_at is None


def test_anonymous_visitors_are_sent_to_sign_in(client, freeze):
    for method, url in pages(freeze):
        response = getattr(client, method)(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_administrators_open_every_page(client, administrator, freeze):
    client.force_login(administrator)

    for url in ("/changes/freezes/", "/changes/freezes/new/", f"/changes/freezes/{freeze.pk}/"):
        assert client.get(url).status_code == 200
    assert client.get(f"/changes/freezes/{freeze.pk}/edit/").status_code == 200
    assert client.get("/changes/freezes/999999/").status_code == 404


def test_an_administrator_creates_a_recurring_freeze_on_the_page(client, administrator, production):
    client.force_login(administrator)

    response = client.post("/changes/freezes/new/", form_data(production))

    freeze = Freeze.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/changes/freezes/{freeze.pk}/"
    assert freeze.recurrence == "FREQ=WEEKLY"
    assert freeze.exdates == ["2026-12-25T18:00:00"]
    assert freeze.local_start.isoformat() == "2026-12-04T18:00:00"
    assert LedgerEntry.objects.filter(kind="freeze.created", actor="ada").count() == 1
    page = client.get(f"/changes/freezes/{freeze.pk}/").content.decode()
    assert "Europe/Berlin" in page


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"time_zone": "Mars/Olympus"}, "Select a valid choice"),
        ({"start": "tomorrow"}, "Enter a local time"),
        ({"end": "2026-12-01T00:00"}, "The end must be after the start."),
        ({"recurrence": "FREQ=SECONDLY"}, "at most daily"),
        ({"recurrence": "FREQ=WEEKLY;UNTIL=bad"}, "not valid RFC 5545"),
        ({"exdates": "2026-12-26T18:00"}, "is not an occurrence"),
        ({"environments": []}, "This field is required"),
        ({"reason": ""}, "This field is required"),
        ({"kind": "frosty"}, "Select a valid choice"),
        ({"start": "2026-03-29T02:30", "end": "2026-03-29T05:00"}, "does not exist"),
    ],
)
def test_bad_input_is_refused_with_a_message_and_nothing_saved(
    client, administrator, production, overrides, message
):
    client.force_login(administrator)
    ledger = LedgerEntry.objects.count()

    response = client.post("/changes/freezes/new/", form_data(production, **overrides))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert Freeze.objects.count() == 0
    assert LedgerEntry.objects.count() == ledger


def test_an_administrator_edits_a_freeze_and_the_ledger_keeps_it(
    client, administrator, production, freeze
):
    client.force_login(administrator)

    response = client.post(
        f"/changes/freezes/{freeze.pk}/edit/",
        form_data(production, name="Quarter close (extended)", recurrence="", exdates=""),
    )

    assert response.status_code == 302
    freeze.refresh_from_db()
    assert freeze.name == "Quarter close (extended)"
    assert freeze.time_zone == "Europe/Berlin"
    entry = LedgerEntry.objects.get(kind="freeze.updated")
    assert entry.payload["name"] == "Quarter close (extended)"
    history = LogEntry.objects.get_for_object(freeze).order_by("timestamp")
    assert history.last().changes_dict["name"] == ["Quarter close", "Quarter close (extended)"]


def test_ending_early_needs_a_reason_and_is_ledgered(client, administrator, freeze):
    client.force_login(administrator)

    client.post(f"/changes/freezes/{freeze.pk}/end/", {"reason": ""})
    freeze.refresh_from_db()
    assert freeze.ended_at is None
    assert not LedgerEntry.objects.filter(kind="freeze.ended").exists()

    client.post(f"/changes/freezes/{freeze.pk}/end/", {"reason": "Close finished"})

    freeze.refresh_from_db()
    assert freeze.ended_at is not None
    assert freeze.end_reason == "Close finished"
    assert LedgerEntry.objects.get(kind="freeze.ended").payload["reason"] == "Close finished"
    # An ended freeze is not edited any more, and not ended twice.
    response = client.post(f"/changes/freezes/{freeze.pk}/end/", {"reason": "again"}, follow=True)
    assert "already ended" in response.content.decode()
    assert LedgerEntry.objects.filter(kind="freeze.ended").count() == 1


def test_the_list_shows_state_and_the_navigation_links_it(client, administrator, freeze):
    client.force_login(administrator)

    page = client.get("/changes/freezes/").content.decode()

    assert "Quarter close" in page
    assert "in force" in page
    assert 'href="/changes/freezes/"' in page


# --- The release page: the freeze shown, the override asked and confirmed -------------------


@pytest.fixture
def held_release(production_release, approver, second_approver, cab_member, freeze):
    from tests import factories

    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)
    return production_release


def test_the_release_page_shows_the_freeze_and_administrators_ask_and_confirm_an_override(
    client, held_release, administrator, second_administrator, freeze
):
    url = f"/approvals/releases/{held_release.pk}/"
    client.force_login(administrator)
    page = client.get(url).content.decode()
    assert "Hard freeze &#x27;Quarter close&#x27; holds releases until" in page
    assert "Ask for an override" in page

    response = client.post(
        f"{url}freeze-override/", {"freeze": freeze.pk, "reason": "Outage fix", "hours": 3}
    )
    assert response.status_code == 302
    override = FreezeOverride.objects.get()
    assert override.release_id == held_release.pk
    assert "awaiting confirmation" in client.get(url).content.decode()

    # The one who asked cannot confirm.
    client.post(f"/changes/freezes/overrides/{override.pk}/confirm/", {"next": url})
    override.refresh_from_db()
    assert override.confirmed_at is None

    client.force_login(second_administrator)
    response = client.post(f"/changes/freezes/overrides/{override.pk}/confirm/", {"next": url})

    assert response["Location"] == url
    override.refresh_from_db()
    assert override.confirmed_by == second_administrator
    page = client.get(url).content.decode()
    assert "in force" in page
    assert 'data-gate-status="approved"' in page


def test_approvers_see_the_freeze_but_no_override_box(client, held_release, approver):
    client.force_login(approver)

    page = client.get(f"/approvals/releases/{held_release.pk}/").content.decode()

    assert "Held by the hard freeze" in page
    assert "Ask for an override" not in page


@pytest.mark.parametrize("persona", ["approver", "requester", "auditor", "outsider"])
def test_only_administrators_ask_for_or_confirm_overrides(
    client, request, held_release, administrator, freeze, persona
):
    from changes.freezes.services import request_override

    override = request_override(
        freeze=freeze,
        release=held_release,
        actor=administrator,
        reason="Fix",
        hours=2,
    )
    client.force_login(request.getfixturevalue(persona))
    ledger = LedgerEntry.objects.count()

    asked = client.post(
        f"/approvals/releases/{held_release.pk}/freeze-override/",
        {"freeze": freeze.pk, "reason": "Please", "hours": 2},
    )
    confirmed = client.post(f"/changes/freezes/overrides/{override.pk}/confirm/")

    assert (asked.status_code, confirmed.status_code) == (403, 403)
    assert FreezeOverride.objects.count() == 1
    assert FreezeOverride.objects.get().confirmed_at is None
    assert LedgerEntry.objects.count() == ledger


@pytest.mark.parametrize(
    "data", [{"reason": "", "hours": 2}, {"reason": "x", "hours": 0}, {"reason": "x", "hours": "a"}]
)
def test_a_bad_override_request_on_the_page_saves_nothing(
    client, held_release, administrator, freeze, data
):
    client.force_login(administrator)
    ledger = LedgerEntry.objects.count()

    response = client.post(
        f"/approvals/releases/{held_release.pk}/freeze-override/",
        {"freeze": freeze.pk, **data},
        follow=True,
    )

    assert "Override not asked" in response.content.decode()
    assert FreezeOverride.objects.count() == 0
    assert LedgerEntry.objects.count() == ledger


def test_an_override_for_a_freeze_that_does_not_hold_the_release_is_refused(
    client, held_release, administrator, make_freeze, staging
):
    elsewhere = make_freeze(environments=[staging])
    client.force_login(administrator)

    client.post(
        f"/approvals/releases/{held_release.pk}/freeze-override/",
        {"freeze": elsewhere.pk, "reason": "x", "hours": 2},
    )

    assert FreezeOverride.objects.count() == 0
    assert timezone.now()


def test_the_release_page_explains_the_soft_freeze_stage(
    client, org, service, production, pipeline_bot, make_freeze, release_manager, approver
):
    from approvals import services
    from tests import factories

    make_freeze(kind="soft", name="Quarter close")
    release, _ = services.request_approval(
        data=factories.release_input(service, production, triggered_by="dave"), actor=pipeline_bot
    )
    client.force_login(approver)

    page = client.get(f"/approvals/releases/{release.pk}/").content.decode()

    assert "Freeze approval (release manager)" in page
    assert "Soft freeze in force (Quarter close): a release manager of the service approves" in page


def test_the_list_costs_the_same_queries_for_one_freeze_and_for_many(
    client, administrator, make_freeze, staging, production, team, service
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_freeze(services=[service])
    client.force_login(administrator)
    client.get("/changes/freezes/")
    with CaptureQueriesContext(connection) as one:
        client.get("/changes/freezes/")

    for index in range(15):
        make_freeze(
            environments=[production, staging],
            teams=[team] if index % 2 else [],
            recurrence="FREQ=WEEKLY" if index % 3 else "",
        )
    with CaptureQueriesContext(connection) as many:
        response = client.get("/changes/freezes/")

    assert response.content.decode().count('data-testid="freeze-row"') == 16
    assert len(many) == len(one)

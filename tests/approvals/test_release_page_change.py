"""The release page's Change and Incidents panels: the change's record and life cycle, its
window in its own zone, what the release's time and the change's window run into (each once,
hidden where the viewer may not see the other change's services), and the incidents that hold
the release or that its change fixes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from approvals import services as approvals
from changes.freezes.services import FreezeInput, create_freeze
from changes.incidents.selectors import incident_hold_reasons
from changes.models import ChangeRecord, Incident
from changes.records.services import ChangeInput, open_change
from governance.authority.services import create_delegation
from tests import factories
from tests.approvals.emergencies.helpers import declare_for

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
DASH = "\u2013"  # between a window's start and end
# The page's reads for a planned release whose change is planned: the release page's own 30
# (tests/approvals/test_views.py, panels included), then two conflict boards of nine reads
# each (the release's hour, the change's window: links, changes and their services, freezes
# and their scopes, approvers, delegations) and the change's services. The same for one
# conflict or incident as for many.
PLANNED_PAGE_QUERIES = 51


def next_tuesday() -> datetime:
    """Midnight UTC of the next Tuesday: a working day for every approver, whatever today is."""
    now = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return now + timedelta(days=(1 - now.weekday()) % 7 or 7)


def paris(hour: int) -> datetime:
    day = next_tuesday()
    return datetime(day.year, day.month, day.day, hour, tzinfo=PARIS)


def page_of(client, user, release):
    client.force_login(user)
    return client.get(reverse("approvals:release_detail", args=[release.pk]))


def other_change(ref: str, services, start: datetime, hours: int) -> ChangeRecord:
    change = ChangeRecord.objects.create(
        ref=ref,
        title=f"Work {ref}",
        planned_start=start,
        planned_end=start + timedelta(hours=hours),
        state=ChangeRecord.State.SCHEDULED,
    )
    change.services.set(services)
    return change


def incident(external_id: str, services, **fields) -> Incident:
    fields.setdefault("severity", 3)
    fields.setdefault("priority", f"P{fields['severity']}")
    found = Incident.objects.create(
        source="api", external_id=external_id, title=f"Trouble {external_id}", **fields
    )
    found.services.set(services)
    return found


@pytest.fixture
def planned_change(org, service, requester):
    """CHG0050001 on payments-api, Tuesday 09:00-12:00 in Paris (08:00-11:00 UTC)."""
    return open_change(
        data=ChangeInput(
            ref="CHG0050001",
            title="Move payments to the new ledger",
            services=[service],
            planned_start=paris(9),
            planned_end=paris(12),
            time_zone="Europe/Paris",
            risk="high",
            impact="low",
        ),
        actor=requester,
    )


@pytest.fixture
def planned_release(planned_change, service, production, pipeline_bot):
    """A release of that change to production, planned for Tuesday 09:30 UTC."""
    release, _ = approvals.request_approval(
        data=factories.release_input(
            service,
            production,
            change_ref=planned_change.ref,
            planned_at=next_tuesday() + timedelta(hours=9, minutes=30),
        ),
        actor=pipeline_bot,
    )
    return release


@pytest.fixture
def freeze(service, production, administrator):
    """A soft freeze on payments-api, Tuesday 07:00-14:00 UTC."""
    start = next_tuesday().replace(tzinfo=None) + timedelta(hours=7)
    return create_freeze(
        data=FreezeInput(
            name="Ledger migration freeze",
            kind="soft",
            time_zone="UTC",
            local_start=start,
            local_end=start + timedelta(hours=7),
            environments=[production],
            reason="Month end",
            services=[service],
        ),
        actor=administrator,
    )


def test_the_change_panel_shows_the_record_its_life_cycle_and_its_window_in_its_zone(
    client, planned_release, approver
):
    response = page_of(client, approver, planned_release)

    assert response.status_code == 200
    body = response.content.decode()
    change = response.context["change_panel"]["change"]
    assert change.ref == "CHG0050001"
    url = reverse("changes:change_detail", args=[change.pk])
    assert f'<a class="mono" href="{url}">CHG0050001</a> Move payments to the new ledger' in body
    # The pending release has taken the change to authorise.
    assert [s["label"] for s in response.context["change_panel"]["life_cycle"]] == [
        "New",
        "Assess",
        "Authorise",
        "Scheduled",
        "Implement",
        "Review",
        "Closed",
    ]
    assert 'aria-current="step">Authorise' in body
    assert 'data-testid="release-change-state">Authorise</span>' in body
    assert 'data-testid="release-change-risk">High · Low</dd>' in body
    day = paris(9).strftime("%Y-%m-%d")
    assert f"{day} 09:00 {DASH} {day} 12:00 Europe/Paris" in body
    assert f"({day} 08:00 {DASH} {day} 11:00 UTC)" in body


def test_a_planned_release_in_a_freeze_overlapping_another_change_shows_each_conflict_once(
    client, planned_release, freeze, service, approver
):
    # Overlaps both the release's hour (09:30-10:30 UTC) and the change's window.
    overlapping = other_change("CHG0050002", [service], next_tuesday() + timedelta(hours=10), 2)

    response = page_of(client, approver, planned_release)

    conflicts = response.context["change_panel"]["conflicts"]
    overlaps = [c for c in conflicts if c.kind == "overlap"]
    freezes = [c for c in conflicts if c.kind == "freeze"]
    assert [c.label for c in overlaps] == ["CHG0050002"]
    assert overlaps[0].url == reverse("changes:change_detail", args=[overlapping.pk])
    assert [c.label for c in freezes] == ["Ledger migration freeze"]
    assert not [c for c in conflicts if c.label == "CHG0050001"]  # never its own change
    body = response.content.decode()
    assert body.count('data-kind="overlap"') == 1
    assert body.count('data-kind="freeze"') == 1
    assert "Work CHG0050002 is planned from" in body
    assert "The window falls in the soft freeze &#x27;Ledger migration freeze&#x27;" in body


def test_the_change_window_conflicts_show_when_the_release_itself_is_not_planned(
    client, planned_change, service, production, pipeline_bot, approver
):
    release, _ = approvals.request_approval(
        data=factories.release_input(service, production, change_ref=planned_change.ref),
        actor=pipeline_bot,
    )
    # 10:30-11:30 UTC meets the change's window (08:00-11:00 UTC); the release has no time.
    other_change("CHG0050004", [service], next_tuesday() + timedelta(hours=10, minutes=30), 1)

    conflicts = page_of(client, approver, release).context["change_panel"]["conflicts"]

    assert [c.label for c in conflicts if c.kind == "overlap"] == ["CHG0050004"]


def test_an_unplanned_release_and_change_say_there_is_nothing_to_check(
    client, production_release, approver
):
    response = page_of(client, approver, production_release)

    assert response.context["change_panel"]["conflicts"] == []
    assert "Neither the release nor its change is planned" in response.content.decode()
    assert "not planned" in response.content.decode()


def test_a_viewer_who_may_not_see_the_other_service_learns_only_that_there_is_a_change(
    client, planned_release, service, other_service, approver, auditor
):
    service.depends_on.add(other_service)  # payments-api needs billing
    other_change("CHG0050003", [other_service], next_tuesday() + timedelta(hours=9), 1)

    hidden = page_of(client, approver, planned_release)
    shown = page_of(client, auditor, planned_release)

    [seen] = [c for c in hidden.context["change_panel"]["conflicts"] if c.kind == "overlap"]
    assert seen.message == (
        "Another change, on a service you may not see, is planned at the same time."
    )
    assert (seen.label, seen.url) == ("", "")
    assert "CHG0050003" not in hidden.content.decode()
    assert "billing" not in hidden.content.decode()
    [whole] = [c for c in shown.context["change_panel"]["conflicts"] if c.kind == "overlap"]
    assert whole.label == "CHG0050003"
    assert "on billing, which payments-api depends on" in whole.message


def test_a_blocking_incident_on_a_dependency_holds_a_release_to_production(
    client, production_release, service, other_service, approver
):
    service.depends_on.add(other_service)
    blocking = incident("PD1", [other_service], severity=1)
    incident("PD2", [service], severity=3)  # open, not blocking: shown, holds nothing
    incident("PD3", [service], severity=1, status="resolved")  # over: not shown
    incident("PD4", [factories.ServiceFactory(slug="search-api")], severity=1)  # unrelated

    response = page_of(client, approver, production_release)

    rows = {r["incident"].external_id: r for r in response.context["incident_panel"]["rows"]}
    assert sorted(rows) == ["PD1", "PD2"]
    assert (rows["PD1"]["holds"], rows["PD1"]["where"]) == (True, "on a service it depends on")
    assert (rows["PD2"]["holds"], rows["PD2"]["where"]) == (False, "on this service")
    body = response.content.decode()
    assert body.count("holds this release") == 1
    # The same answer as the gate's.
    assert incident_hold_reasons(
        service_id=service.pk,
        environment_risk="high",
    ) == [
        f"Open incident API PD1 (P1, triggered): “{blocking.title}” holds releases to "
        "high-risk environments until it is resolved; approvals count once it is."
    ]


def test_a_blocking_incident_does_not_hold_a_release_to_a_lower_risk_environment(
    client, org, service, staging, pipeline_bot, approver
):
    incident("PD5", [service], severity=1)
    release, _ = approvals.request_approval(
        data=factories.release_input(service, staging), actor=pipeline_bot
    )

    response = page_of(client, approver, release)

    [row] = response.context["incident_panel"]["rows"]
    assert (row["incident"].external_id, row["holds"]) == ("PD5", False)
    assert "Incidents hold releases to high-risk environments only" in response.content.decode()


def test_no_incident_holds_an_emergency_release_inside_its_exception(
    client, org, service, production, pipeline_bot, approver
):
    fixed = incident("PD6", [service], urgency="high", severity=None, priority="")
    incident("PD7", [service], severity=1)
    release, _ = approvals.request_approval(
        data=factories.release_input(
            service, production, change_type="emergency", change_incident=fixed
        ),
        actor=pipeline_bot,
    )
    declare_for(release, incident=fixed)

    response = page_of(client, approver, release)

    rows = {r["incident"].external_id: r for r in response.context["incident_panel"]["rows"]}
    assert (rows["PD6"]["holds"], rows["PD6"]["excepted"]) == (False, True)
    assert rows["PD6"]["fixed_by_change"] is True
    assert (rows["PD7"]["holds"], rows["PD7"]["excepted"]) == (False, True)
    body = response.content.decode()
    assert body.count("does not hold it: the emergency exception is in force") == 2
    assert body.count("holds this release") == 0
    assert (
        incident_hold_reasons(service_id=service.pk, environment_risk="high", excepted=True) == []
    )


def test_an_emergency_release_never_declared_is_held_like_any(
    client, org, service, production, pipeline_bot, approver
):
    fixed = incident("PD10", [service], severity=1)
    release, _ = approvals.request_approval(
        data=factories.release_input(
            service, production, change_type="emergency", change_incident=fixed
        ),
        actor=pipeline_bot,
    )

    [row] = page_of(client, approver, release).context["incident_panel"]["rows"]

    assert (row["holds"], row["excepted"], row["fixed_by_change"]) == (True, False, True)


def test_a_normal_change_naming_an_incident_is_still_held_by_it(
    client, org, service, production, pipeline_bot, approver
):
    fixed = incident("PD8", [service], severity=1)
    release, _ = approvals.request_approval(
        data=factories.release_input(service, production, change_incident=fixed),
        actor=pipeline_bot,
    )

    [row] = page_of(client, approver, release).context["incident_panel"]["rows"]

    assert (row["holds"], row["excepted"], row["fixed_by_change"]) == (True, False, True)


def test_the_incident_a_change_fixes_is_shown_even_on_another_service(
    client, org, service, other_service, production, pipeline_bot, approver
):
    fixed = incident("PD9", [other_service], severity=1)
    release, _ = approvals.request_approval(
        data=factories.release_input(
            service, production, change_type="emergency", change_incident=fixed
        ),
        actor=pipeline_bot,
    )

    [row] = page_of(client, approver, release).context["incident_panel"]["rows"]

    assert (row["incident"].pk, row["where"], row["holds"]) == (
        fixed.pk,
        "on another service",
        False,
    )
    assert row["fixed_by_change"] is True


def test_the_panel_holds_what_the_gate_holds_under_a_wider_blocking_threshold(
    client, settings, production_release, service, approver
):
    settings.SIGNOFF_INCIDENT_BLOCKING_PRIORITY = 2
    incident("PD11", [service], severity=2)
    incident("PD12", [service], severity=3)

    response = page_of(client, approver, production_release)

    rows = {
        r["incident"].external_id: r["holds"] for r in response.context["incident_panel"]["rows"]
    }
    assert rows == {"PD11": True, "PD12": False}
    assert len(incident_hold_reasons(service_id=service.pk, environment_risk="high")) == 1


# --- Who sees the panels: exactly who sees the release page --------------------------------

SEES = ["requester", "approver", "second_approver", "cab_member", "auditor", "administrator"]
BLIND = ["outsider", "other_service_approver"]


@pytest.fixture
def people(
    requester,
    approver,
    second_approver,
    cab_member,
    auditor,
    administrator,
    outsider,
    other_service_approver,
):
    return {
        "requester": requester,
        "approver": approver,
        "second_approver": second_approver,
        "cab_member": cab_member,
        "auditor": auditor,
        "administrator": administrator,
        "outsider": outsider,
        "other_service_approver": other_service_approver,
    }


def test_signed_out_people_are_sent_to_sign_in(client, planned_release):
    response = client.get(reverse("approvals:release_detail", args=[planned_release.pk]))

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("persona", SEES + BLIND)
def test_the_panels_are_shown_to_those_who_see_the_release_and_to_nobody_else(
    client, people, planned_release, freeze, persona
):
    response = page_of(client, people[persona], planned_release)
    status = response.status_code
    body = response.content.decode()

    if persona in BLIND:
        assert status == 404
        assert "CHG0050001" not in body and "Ledger migration freeze" not in body
    else:
        assert status == 200
        assert 'data-testid="release-change"' in body and 'data-testid="release-incidents"' in body
        assert "Ledger migration freeze" in body


def test_a_delegate_sees_the_change_but_no_link_to_a_page_that_would_refuse_them(
    client, planned_release, service, approver, other_service_approver
):
    now = timezone.now()
    create_delegation(
        delegator=approver,
        delegate=other_service_approver,
        service=service,
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(days=3),
        reason="Holiday",
        actor=approver,
    )

    response = page_of(client, other_service_approver, planned_release)

    assert response.status_code == 200
    body = response.content.decode()
    assert '<span class="mono">CHG0050001</span> Move payments to the new ledger' in body
    change_url = reverse("changes:change_detail", args=[planned_release.change_id])
    assert change_url not in body
    client.force_login(other_service_approver)
    assert client.get(change_url).status_code == 404


# --- Cost ---------------------------------------------------------------------------------


def _queries(client, release) -> int:
    url = reverse("approvals:release_detail", args=[release.pk])
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries.captured_queries)


def test_the_panels_cost_the_same_for_one_conflict_and_incident_as_for_many(
    client, planned_release, freeze, service, other_service, production, administrator, approver
):
    service.depends_on.add(other_service)
    start = next_tuesday() + timedelta(hours=9)
    other_change("CHG0050010", [service], start, 1)
    incident("PD10", [service], severity=1)
    client.force_login(approver)
    _queries(client, planned_release)  # warm-up: per-process caches (content types, permissions)
    one = _queries(client, planned_release)

    for n in range(11, 20):
        other_change(f"CHG00500{n}", [service, other_service], start, 2)
        incident(f"PD{n}", [other_service if n % 2 else service], severity=n % 3 + 1)
    for n in range(3):
        wall = start.replace(tzinfo=None) + timedelta(minutes=n)
        create_freeze(
            data=FreezeInput(
                name=f"Freeze {n}",
                kind="soft",
                time_zone="UTC",
                local_start=wall,
                local_end=wall + timedelta(hours=2),
                environments=[production],
                reason="More",
                services=[service],
            ),
            actor=administrator,
        )
    panels = client.get(reverse("approvals:release_detail", args=[planned_release.pk])).context
    many = _queries(client, planned_release)

    assert len(panels["change_panel"]["conflicts"]) >= 13
    assert len(panels["incident_panel"]["rows"]) == 10
    assert one == many == PLANNED_PAGE_QUERIES


def test_a_decision_refused_without_htmx_answers_the_whole_page_panels_included(
    client, planned_release, freeze, approver
):
    client.force_login(approver)

    response = client.post(
        reverse("approvals:release_decide", args=[planned_release.pk]), {"verdict": "approve"}
    )

    assert response.status_code == 422
    body = response.content.decode()
    assert 'data-testid="release-change"' in body and 'data-testid="release-incidents"' in body
    assert "Ledger migration freeze" in body

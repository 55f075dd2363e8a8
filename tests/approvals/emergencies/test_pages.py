"""The emergency pages and the release page's emergency panel, with their permission matrix."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from approvals import services
from approvals.emergencies.models import EmergencyException
from approvals.emergencies.services import declare_emergency, end_emergency
from tests import factories
from tests.approvals.emergencies.helpers import counts, declare_for, exception_row

pytestmark = pytest.mark.django_db

LIST = reverse("emergencies:emergency_list")
NEW = reverse("emergencies:emergency_declare")


def declared(release_manager, service, **overrides) -> EmergencyException:
    values = {
        "actor": release_manager,
        "service": service,
        "title": "Hotfix checkout",
        "justification": "Payments fail since 09:12.",
        "outage": "Checkout down.",
        "controls": ["extra_monitoring", "pair_deployment"],
        "control_notes": "Lead on the call.",
    }
    values.update(overrides)
    return declare_emergency(**values)


def body_of(client, user, url: str):
    client.force_login(user)
    return client.get(url)


# --- The list ----------------------------------------------------------------------------------


def test_anonymous_people_are_sent_to_sign_in(client, org):
    for url in (LIST, NEW, reverse("emergencies:emergency_detail", args=[1])):
        response = client.get(url)
        assert response.status_code == 302
        assert "/login" in response["Location"] or "/accounts/" in response["Location"]


@pytest.mark.parametrize(
    "who, sees", [("outsider", False), ("other_service_approver", False), ("approver", True)]
)
def test_the_list_shows_emergencies_of_services_one_sees(
    client, org, service, release_manager, other_service_approver, who, sees, request
):
    emergency = declared(release_manager, service)

    response = body_of(client, request.getfixturevalue(who), LIST)

    assert response.status_code == 200
    assert (emergency.change.ref in response.content.decode()) is sees


def test_the_list_puts_those_in_force_first_and_filters(
    client, org, service, release_manager, approver
):
    now = timezone.now()
    old = declared(release_manager, service, now=now - timedelta(hours=10), title="Old")
    current = declared(release_manager, service, now=now - timedelta(hours=1), title="Current")
    client.force_login(approver)

    rows = list(client.get(LIST).context["page"].object_list)
    in_force = list(client.get(LIST, {"state": "in_force"}).context["page"].object_list)
    ended = list(client.get(LIST, {"state": "ended"}).context["page"].object_list)
    searched = list(client.get(LIST, {"q": "Old"}).context["page"].object_list)

    assert rows == [current, old]
    assert (in_force, ended, searched) == ([current], [old], [old])
    assert [r.in_force for r in rows] == [True, False]


def test_the_list_costs_the_same_for_one_emergency_as_for_many(
    client, org, service, release_manager, approver
):
    declared(release_manager, service)
    client.force_login(approver)
    client.get(LIST)  # warm-up: per-process caches
    with CaptureQueriesContext(connection) as one:
        assert client.get(LIST).status_code == 200
    for index in range(12):
        declared(release_manager, service, title=f"Hotfix {index}")
    with CaptureQueriesContext(connection) as many:
        response = client.get(LIST)

    assert len(response.context["page"].object_list) == 13
    assert len(one) == len(many)


# --- Declaring ---------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["outsider", "approver", "auditor", "cab_member"])
def test_only_release_managers_and_administrators_see_the_declare_form(client, org, who, request):
    before = counts()
    client.force_login(request.getfixturevalue(who))

    assert client.get(NEW).status_code == 404
    assert client.post(NEW, {"service": "payments-api"}).status_code == 404
    assert counts() == before


def test_the_declare_form_offers_the_policys_controls_and_length(client, org, release_manager):
    response = body_of(client, release_manager, NEW)

    assert response.status_code == 200
    body = response.content.decode()
    assert "Pair deployment (a second engineer watches)" in body
    assert "Immediate rollback plan, tested" in body
    assert response.context["form"].fields["hours"].initial == 4


def test_declaring_through_the_form_opens_the_emergency(client, org, service, release_manager):
    client.force_login(release_manager)

    response = client.post(
        NEW,
        {
            "service": "payments-api",
            "title": "Hotfix checkout",
            "justification": "Payments fail.",
            "outage": "Checkout down.",
            "controls": ["extra_monitoring", "post_deploy_verification"],
            "hours": "3",
        },
    )

    emergency = EmergencyException.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("emergencies:emergency_detail", args=[emergency.pk])
    assert emergency.controls == ["extra_monitoring", "post_deploy_verification"]
    assert emergency.ends_at - emergency.starts_at == timedelta(hours=3)


@pytest.mark.parametrize(
    "data, field",
    [
        ({"hours": "9"}, "hours"),
        ({"outage": ""}, "incident"),
        ({"controls": [], "control_notes": ""}, "controls"),
        ({"controls": ["prayer"]}, "controls"),
        ({"justification": ""}, "justification"),
        ({"service": "billing"}, "service"),
    ],
)
def test_a_bad_declaration_is_a_form_error_and_writes_nothing(
    client, org, release_manager, other_service, data, field
):
    client.force_login(release_manager)
    before = counts()
    values = {
        "service": "payments-api",
        "title": "Hotfix",
        "justification": "Payments fail.",
        "outage": "Checkout down.",
        "controls": ["extra_monitoring"],
        "hours": "2",
    }
    values.update(data)

    response = client.post(NEW, values)

    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert counts() == before


# --- One emergency: see, end, review ------------------------------------------------------


@pytest.mark.parametrize(
    "who, status", [("outsider", 404), ("other_service_approver", 404), ("approver", 200)]
)
def test_the_detail_page_opens_for_those_who_see_the_service(
    client, org, service, release_manager, other_service_approver, who, status, request
):
    emergency = declared(release_manager, service)

    response = body_of(
        client,
        request.getfixturevalue(who),
        reverse("emergencies:emergency_detail", args=[emergency.pk]),
    )

    assert response.status_code == status


def test_the_detail_page_shows_the_change_releases_with_their_gate(
    client, emergency_release, release_manager, approver
):
    emergency = declare_for(emergency_release)

    response = body_of(
        client, approver, reverse("emergencies:emergency_detail", args=[emergency.pk])
    )

    [row] = response.context["releases"]
    assert (row["id"], row["gate"]) == (emergency_release.pk, "approved")
    assert response.context["end_form"] is None  # an approver does not end it
    assert response.context["review_form"] is None  # nor reviews it


@pytest.mark.parametrize("who", ["outsider", "approver", "cab_member", "auditor"])
def test_only_the_declarer_release_managers_and_administrators_end_it(
    client, org, service, release_manager, who, request
):
    emergency = declared(release_manager, service)
    before, row = counts(), exception_row(emergency)
    client.force_login(request.getfixturevalue(who))

    response = client.post(
        reverse("emergencies:emergency_end", args=[emergency.pk]), {"reason": "Done."}
    )

    assert response.status_code == 404
    assert (counts(), exception_row(emergency)) == (before, row)


def test_the_declarer_ends_it_from_the_page(client, org, service, release_manager):
    emergency = declared(release_manager, service)
    client.force_login(release_manager)
    url = reverse("emergencies:emergency_end", args=[emergency.pk])

    refused = client.post(url, {"reason": ""})
    assert refused.status_code == 400
    response = client.post(url, {"reason": "Fixed and verified."})

    assert response.status_code == 302
    emergency.refresh_from_db()
    assert not emergency.in_force_at(timezone.now())


def test_a_cab_member_reviews_it_from_the_page(client, org, service, release_manager, cab_member):
    emergency = declared(release_manager, service)
    client.force_login(cab_member)
    url = reverse("emergencies:emergency_review", args=[emergency.pk])
    page = client.get(reverse("emergencies:emergency_detail", args=[emergency.pk]))
    assert page.context["review_form"] is not None

    refused = client.post(url, {"outcome": "not_justified", "notes": ""})
    assert refused.status_code == 400
    assert refused.context["review_form"].errors["notes"] == ["Name the actions to take."]
    response = client.post(url, {"outcome": "justified", "notes": "Outage was real."})

    assert response.status_code == 302
    emergency.refresh_from_db()
    assert (emergency.secondary_review, emergency.reviewed_by) == ("justified", cab_member)


@pytest.mark.parametrize("who", ["approver", "release_manager", "auditor"])
def test_others_may_not_review_from_the_page(client, org, service, release_manager, who, request):
    emergency = declared(release_manager, service)
    before, row = counts(), exception_row(emergency)
    client.force_login(request.getfixturevalue(who))

    response = client.post(
        reverse("emergencies:emergency_review", args=[emergency.pk]),
        {"outcome": "justified", "notes": ""},
    )

    assert response.status_code == 404
    assert (counts(), exception_row(emergency)) == (before, row)


# --- The release page and the release list -------------------------------------------------


def test_the_release_page_shows_the_exception_controls_and_review(
    client, emergency_release, approver
):
    approver.time_zone = "Europe/Paris"
    approver.save()
    emergency = declare_for(emergency_release)

    response = body_of(
        client, approver, reverse("approvals:release_detail", args=[emergency_release.pk])
    )

    panel = response.context["emergency_panel"]
    assert panel["emergency"] == emergency
    assert panel["controls"] == ["Extra monitoring during and after the deployment"]
    assert panel["window"]["in_force"] is True
    assert panel["window"]["utc"].endswith(" UTC")
    assert panel["window"]["local"].endswith(" Europe/Paris")
    body = response.content.decode()
    assert 'data-testid="release-emergency"' in body
    assert "Enhanced monitoring" in body
    assert "Awaiting CAB secondary review" in body
    assert "Checkout returns 500 for every request." in body


def test_a_normal_release_page_has_no_emergency_panel(client, production_release, approver):
    response = body_of(
        client, approver, reverse("approvals:release_detail", args=[production_release.pk])
    )

    assert response.context["emergency_panel"] is None
    assert 'data-testid="release-emergency"' not in response.content.decode()


def test_the_release_list_flags_and_filters_enhanced_monitoring(
    client, emergency_release, production_release, approver
):
    declare_for(emergency_release)
    client.force_login(approver)
    url = reverse("approvals:release_list")

    everything = client.get(url)
    flagged = client.get(url, {"monitoring": "on"})

    assert {r.pk: r.enhanced_monitoring for r in everything.context["page"].object_list} == {
        emergency_release.pk: True,
        production_release.pk: False,
    }
    assert [r.pk for r in flagged.context["page"].object_list] == [emergency_release.pk]
    assert everything.content.decode().count('data-testid="enhanced-monitoring"') == 1


def test_the_release_list_costs_the_same_with_monitoring_flags(
    client, org, service, production, pipeline_bot, approver
):
    client.force_login(approver)
    url = reverse("approvals:release_list")
    release, _ = services.request_approval(
        data=factories.release_input(service, production, change_type="emergency"),
        actor=pipeline_bot,
    )
    declare_for(release)
    client.get(url)
    with CaptureQueriesContext(connection) as one:
        client.get(url, {"monitoring": "on"})
    for _ in range(5):
        more, _ = services.request_approval(
            data=factories.release_input(service, production, change_type="emergency"),
            actor=pipeline_bot,
        )
        declare_for(more)
    with CaptureQueriesContext(connection) as many:
        response = client.get(url, {"monitoring": "on"})

    assert len(response.context["page"].object_list) == 6
    assert len(one) == len(many)


def test_the_release_page_says_no_freeze_holds_it_inside_the_exception(
    client, emergency_release, approver, hard_freeze, release_manager
):
    hard_freeze()
    emergency = declare_for(emergency_release)
    url = reverse("approvals:release_detail", args=[emergency_release.pk])

    inside = body_of(client, approver, url)
    end_emergency(emergency=emergency, actor=release_manager, reason="Fixed and verified.")
    after = client.get(url)

    assert inside.context["freezes"]["holding"] == []
    assert "Held by the hard freeze" not in inside.content.decode()
    assert [f.name for f in after.context["freezes"]["holding"]] == ["Quarter close"]

"""The alerts page at /anomalies/: who sees it, what it shows, acknowledging from it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from governance.models import LedgerEntry, Role
from reporting.anomalies.models import AnomalyAlert
from reporting.anomalies.services import raise_alerts
from tests import factories
from tests.reporting.anomalies.history import person
from tests.reporting.anomalies.test_alerts import finding_about

pytestmark = pytest.mark.django_db
URL = "/anomalies/"


@pytest.fixture
def security_approver(db):
    user = factories.UserFactory(username="sam", first_name="Sam")
    factories.grant(user, Role.SECURITY_APPROVER)
    return user


@pytest.fixture
def alert(db) -> AnomalyAlert:
    [alert] = raise_alerts([finding_about(person("quentin"))])
    return alert


def acknowledge_url(alert: AnomalyAlert) -> str:
    return reverse("reporting:anomaly_acknowledge", args=[alert.pk])


def sign_in(client, user):
    client.force_login(user)
    return client


# --- Who may see it and act -----------------------------------------------------------------------


def test_anonymous_people_are_sent_to_sign_in(client, alert):
    assert client.get(URL).status_code == 302
    response = client.post(acknowledge_url(alert), {"note": "Fine."})
    assert response.status_code == 302 and "/login/" in response["Location"]
    alert.refresh_from_db()
    assert alert.status == "open"


@pytest.mark.parametrize(
    "persona", ["approver", "requester", "cab_member", "outsider", "scoped_security_approver"]
)
def test_people_without_security_administrator_or_auditor_authority_are_refused(
    client, alert, request, persona, service
):
    if persona == "scoped_security_approver":
        user = factories.UserFactory(username="sid")
        factories.grant(user, Role.SECURITY_APPROVER, service)
    else:
        user = request.getfixturevalue(persona)
    sign_in(client, user)
    response = client.get(URL)
    assert response.status_code == 403
    assert b"quentin" not in response.content
    response = client.post(acknowledge_url(alert), {"note": "Fine."})
    assert response.status_code == 403
    alert.refresh_from_db()
    assert alert.status == "open"
    assert not LedgerEntry.objects.filter(kind="anomaly.acknowledged").exists()


@pytest.mark.parametrize("persona", ["security_approver", "administrator"])
def test_security_approvers_and_administrators_see_alerts_with_an_acknowledge_form(
    client, alert, request, persona
):
    response = sign_in(client, request.getfixturevalue(persona)).get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert "quentin approved at 03:00." in body
    assert 'data-testid="acknowledge-form"' in body
    decision = alert.evidence["decisions"][0]
    assert reverse("approvals:release_detail", args=[decision["release_id"]]) in body


def test_auditors_read_alerts_but_get_no_form_and_cannot_acknowledge(client, alert, auditor):
    sign_in(client, auditor)
    response = client.get(URL)
    assert response.status_code == 200
    assert "quentin approved at 03:00." in response.content.decode()
    assert b'data-testid="acknowledge-form"' not in response.content
    response = client.post(acknowledge_url(alert), {"note": "Fine."})
    assert response.status_code == 403
    alert.refresh_from_db()
    assert alert.status == "open"


# --- Acknowledging from the page ------------------------------------------------------------------


def test_acknowledging_with_a_note_moves_the_alert_to_acknowledged(
    client, alert, security_approver
):
    sign_in(client, security_approver)
    response = client.post(acknowledge_url(alert), {"note": "Quentin was on call."})
    assert response.status_code == 302
    assert response["Location"] == f"{URL}#anomaly-{alert.pk}"
    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by, alert.note) == (
        "acknowledged",
        security_approver,
        "Quentin was on call.",
    )
    assert LedgerEntry.objects.get(kind="anomaly.acknowledged").actor == "sam"
    assert client.get(URL).context["alerts"] == []  # open ones are shown by default
    shown = client.get(URL, {"status": "acknowledged"}).content.decode()
    assert "Acknowledged by sam" in shown and "Quentin was on call." in shown


def test_an_empty_note_is_refused_and_nothing_changes(client, alert, security_approver):
    response = sign_in(client, security_approver).post(acknowledge_url(alert), {"note": " "})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.status == "open"
    assert not LedgerEntry.objects.filter(kind="anomaly.acknowledged").exists()
    page = client.get(URL).content.decode()
    assert "A note is required to acknowledge an alert." in page


def test_an_alert_about_the_viewer_shows_no_form_and_refuses_them(client, security_approver):
    [alert] = raise_alerts([finding_about(security_approver)])
    sign_in(client, security_approver)
    page = client.get(URL).content.decode()
    assert "This alert is about you or your team" in page
    assert 'data-testid="acknowledge-form"' not in page
    response = client.post(acknowledge_url(alert), {"note": "Nothing to see."})
    assert response.status_code == 403
    assert "someone else must acknowledge it" in response.content.decode()
    alert.refresh_from_db()
    assert alert.status == "open"


def test_acknowledging_twice_answers_conflict(client, alert, security_approver, administrator):
    sign_in(client, security_approver).post(acknowledge_url(alert), {"note": "Checked."})
    response = sign_in(client, administrator).post(acknowledge_url(alert), {"note": "Again."})
    assert response.status_code == 409
    alert.refresh_from_db()
    assert alert.note == "Checked."


def test_acknowledging_an_unknown_alert_is_not_found(client, security_approver):
    response = sign_in(client, security_approver).post("/anomalies/999/acknowledge/", {"note": "x"})
    assert response.status_code == 404


# --- Filters and cost ----------------------------------------------------------------------------


def test_filters_by_status_and_kind(client, security_approver):
    raise_alerts(
        [
            finding_about(person("una"), kind="off_hours", key="a"),
            finding_about(person("vic"), kind="rubber_stamp", key="b"),
        ]
    )
    sign_in(client, security_approver)
    kinds = [s["alert"].kind for s in client.get(URL, {"kind": "rubber_stamp"}).context["alerts"]]
    assert kinds == ["rubber_stamp"]
    everything = client.get(URL, {"status": "all"}).context["alerts"]
    assert len(everything) == 2
    counts = {row["kind"]: row["count"] for row in client.get(URL).context["open_by_kind"]}
    assert counts["off_hours"] == counts["rubber_stamp"] == 1 and counts["reciprocity"] == 0


def test_an_unknown_filter_value_is_a_clear_error(client, security_approver):
    response = sign_in(client, security_approver).get(URL, {"kind": "bogus"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_the_query_count_does_not_grow_with_the_alerts(
    client, security_approver, django_assert_num_queries
):
    sign_in(client, security_approver).get(URL)  # the first request saves its session
    raise_alerts([finding_about(person("one"), key="0")])
    with django_assert_num_queries(8) as one:
        client.get(URL)
    raise_alerts([finding_about(person(f"p{n}"), key=f"{n + 1}") for n in range(19)])
    with django_assert_num_queries(8):
        response = client.get(URL)
    assert len(response.context["alerts"]) == 20
    # Session, user, the viewer's roles, the count, the viewer's teams, the alerts, the open
    # counts per kind, the menu's role check.
    assert len(one.captured_queries) == 8

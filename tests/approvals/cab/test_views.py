"""The CAB's pages: who may open them (anonymous, no role, out of scope, allowed), a meeting
run through its pages, refusals shown as they are with nothing saved, live updates, minutes."""

from __future__ import annotations

import shutil
import subprocess
from datetime import time, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.cab.live import meeting_token
from approvals.models import ApprovalStage, Decision
from changes.cab import services as cab
from changes.cab.models import AgendaItem, CabMeeting, CabSchedule
from changes.records.models import ChangeRecord
from governance.models import LedgerEntry, Role
from tests import factories
from tests.approvals.cab.conftest import make_meeting

pytestmark = pytest.mark.django_db


@pytest.fixture
def payments_meeting(cab_member, second_cab_member, service):
    return make_meeting(cab_member, second_cab_member, quorum=2, services=[service])


def _member_paths(meeting) -> list[tuple[str, str]]:
    base = f"/cab/meetings/{meeting.pk}"
    return [
        ("get", f"{base}/"),
        ("get", f"{base}/updates/"),
        ("get", f"{base}/minutes.pdf"),
        ("post", f"{base}/attendance/"),
        ("post", f"{base}/open/"),
        ("post", f"{base}/close/"),
        ("post", f"{base}/items/"),
    ]


def test_anonymous_people_are_sent_to_sign_in(client, payments_meeting):
    for method, path in [*_member_paths(payments_meeting), ("get", "/cab/meetings/")]:
        response = getattr(client, method)(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("who", ["outsider", "billing_cab_member"])
def test_a_meeting_outside_ones_scope_is_not_found(request, client, payments_meeting, who):
    client.force_login(request.getfixturevalue(who))
    entries = LedgerEntry.objects.count()
    for method, path in _member_paths(payments_meeting):
        assert getattr(client, method)(path).status_code == 404, path
    item, _ = cab.add_agenda_item(meeting=payments_meeting, key="manual:x", kind="other", title="X")
    outcome = f"/cab/meetings/{payments_meeting.pk}/items/{item.pk}/outcome/"
    assert client.post(outcome, {"outcome": "reviewed"}).status_code == 404
    assert LedgerEntry.objects.count() == entries + 1  # only the item added above
    assert payments_meeting.attendees.count() == 0


def test_a_cab_member_of_the_service_sees_the_meeting_and_the_list(
    client, payments_meeting, billing_cab_member, other_service
):
    elsewhere = make_meeting(billing_cab_member, services=[other_service], title="Billing CAB")
    member = factories.UserFactory(username="pat")
    factories.grant(member, Role.CAB_MEMBER, payments_meeting.services.get())
    client.force_login(member)

    assert client.get(f"/cab/meetings/{payments_meeting.pk}/").status_code == 200
    listing = client.get("/cab/meetings/").content.decode()
    assert f"/cab/meetings/{payments_meeting.pk}/" in listing
    assert f"/cab/meetings/{elsewhere.pk}/" not in listing


@pytest.mark.parametrize("path", ["/cab/schedules/", "/cab/schedules/new/", "/cab/meetings/new/"])
def test_schedules_and_one_off_meetings_are_for_administrators(
    client, path, outsider, cab_member, administrator
):
    assert client.get(path).status_code == 302
    for person in (outsider, cab_member):
        client.force_login(person)
        assert client.get(path).status_code == 403
    client.force_login(administrator)
    assert client.get(path).status_code == 200


def test_an_administrator_creates_a_weekly_schedule_from_the_form(
    client, administrator, cab_member, second_cab_member
):
    client.force_login(administrator)
    response = client.post(
        "/cab/schedules/new/",
        {
            "name": "Weekly CAB",
            "frequency": "weekly",
            "days": ["TU"],
            "week_of_month": "1",
            "first_day": "2026-10-01",
            "local_time": "14:00",
            "time_zone": "Europe/London",
            "duration_minutes": "60",
            "quorum": "2",
            "members": [cab_member.pk, second_cab_member.pk],
            "active": "on",
        },
    )
    assert response.status_code == 302
    schedule = CabSchedule.objects.get()
    assert (schedule.rrule, schedule.time_zone, schedule.quorum) == (
        "FREQ=WEEKLY;BYDAY=TU",
        "Europe/London",
        2,
    )
    form = client.get(f"/cab/schedules/{schedule.pk}/edit/").context["form"]
    assert (form["days"].value(), form["local_time"].value()) == (["TU"], time(14, 0))


def test_a_bad_schedule_is_a_form_error_and_writes_nothing(client, administrator, cab_member):
    client.force_login(administrator)
    response = client.post(
        "/cab/schedules/new/",
        {
            "name": "Weekly CAB",
            "frequency": "weekly",
            "days": [],
            "first_day": "2026-10-01",
            "local_time": "25:00",
            "time_zone": "Mars/Olympus",
            "duration_minutes": "60",
            "quorum": "3",
            "members": [cab_member.pk],
        },
    )
    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"days", "local_time", "time_zone"}
    assert not CabSchedule.objects.exists()
    assert not LedgerEntry.objects.filter(kind="cab.schedule_saved").exists()


def _run_to_outcome(client, meeting, first, second):
    """Both members mark themselves present through the page; the first opens it."""
    for person in (first, second):
        client.force_login(person)
        client.post(f"/cab/meetings/{meeting.pk}/attendance/", {"present": "1"})
    client.force_login(first)
    client.post(f"/cab/meetings/{meeting.pk}/open/")


def test_running_a_meeting_through_its_pages(
    client, payments_meeting, cab_member, second_cab_member, cab_release, cab_stage
):
    item, _ = cab.add_agenda_item(
        meeting=payments_meeting,
        key=f"stage:{cab_stage.pk}",
        kind=AgendaItem.Kind.CAB_APPROVAL,
        title="payments-api to production",
        release_id=cab_release.pk,
    )
    _run_to_outcome(client, payments_meeting, cab_member, second_cab_member)

    response = client.post(
        f"/cab/meetings/{payments_meeting.pk}/items/{item.pk}/outcome/",
        {f"item-{item.pk}-outcome": "approved", f"item-{item.pk}-minutes": "Go ahead."},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    assert 'data-testid="item-outcome">Approved<' in response.content.decode()
    decision = Decision.objects.get(stage=cab_stage)
    assert (decision.approver, decision.channel) == (cab_member, "cab")
    payments_meeting.refresh_from_db()
    assert (payments_meeting.status, payments_meeting.chair) == ("in_progress", cab_member)


def test_a_refused_decision_is_shown_on_the_item_and_saves_nothing(
    client, payments_meeting, cab_member, second_cab_member, cab_release, cab_stage, requester
):
    factories.grant(requester, Role.CAB_MEMBER)
    payments_meeting.members.add(requester)
    item, _ = cab.add_agenda_item(
        meeting=payments_meeting,
        key=f"stage:{cab_stage.pk}",
        kind=AgendaItem.Kind.CAB_APPROVAL,
        title="payments-api to production",
        release_id=cab_release.pk,
    )
    _run_to_outcome(client, payments_meeting, requester, cab_member)
    client.force_login(requester)
    entries = LedgerEntry.objects.count()

    response = client.post(
        f"/cab/meetings/{payments_meeting.pk}/items/{item.pk}/outcome/",
        {f"item-{item.pk}-outcome": "approved", f"item-{item.pk}-minutes": "Mine."},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 409
    assert "someone else must approve it" in response.content.decode()
    assert 'data-testid="outcome-form"' in response.content.decode()
    item.refresh_from_db()
    assert item.outcome == ""
    assert not Decision.objects.filter(stage=cab_stage).exists()
    assert LedgerEntry.objects.count() == entries


def test_missing_minutes_are_a_form_error(client, payments_meeting, cab_member, second_cab_member):
    item, _ = cab.add_agenda_item(meeting=payments_meeting, key="manual:1", kind="other", title="T")
    _run_to_outcome(client, payments_meeting, cab_member, second_cab_member)
    entries = LedgerEntry.objects.count()

    response = client.post(
        f"/cab/meetings/{payments_meeting.pk}/items/{item.pk}/outcome/",
        {f"item-{item.pk}-outcome": "reviewed", f"item-{item.pk}-minutes": "   "},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 422
    assert "Minutes are required for every outcome." in response.content.decode()
    assert LedgerEntry.objects.count() == entries
    item.refresh_from_db()
    assert item.outcome == ""


def test_the_quorum_message_is_shown_until_enough_members_are_present(
    client, payments_meeting, cab_member
):
    client.force_login(cab_member)
    client.post(f"/cab/meetings/{payments_meeting.pk}/attendance/", {"present": "1"})
    client.post(f"/cab/meetings/{payments_meeting.pk}/open/")

    html = client.get(f"/cab/meetings/{payments_meeting.pk}/").content.decode()

    assert "Quorum not met: 1 of the 2 members needed are present." in html
    assert 'data-testid="outcome-form"' not in html


def test_a_member_adds_an_item_and_a_bad_change_ref_is_refused(
    client, payments_meeting, cab_member
):
    client.force_login(cab_member)
    path = f"/cab/meetings/{payments_meeting.pk}/items/"

    client.post(path, {"title": "Storage renewal", "detail": "", "change_ref": "CHG404"})
    assert not payments_meeting.items.exists()
    client.post(path, {"title": "Storage renewal", "detail": "Quote attached."})
    assert list(payments_meeting.items.values_list("title", "added_by")) == [
        ("Storage renewal", cab_member.pk)
    ]


def test_an_item_may_name_only_a_change_the_member_can_see(
    client, billing_cab_member, second_cab_member, other_service, service
):
    meeting = make_meeting(
        billing_cab_member, second_cab_member, quorum=2, services=[other_service]
    )
    hidden = ChangeRecord.objects.create(ref="CHG0999001", title="Payments acquirer switch")
    hidden.services.set([service])
    mine = ChangeRecord.objects.create(ref="CHG0999002", title="Billing invoice layout")
    mine.services.set([other_service])
    client.force_login(billing_cab_member)
    path = f"/cab/meetings/{meeting.pk}/items/"
    entries = LedgerEntry.objects.count()

    refused = client.post(path, {"title": "Look at this", "change_ref": "chg0999001"}, follow=True)

    assert "No change chg0999001 that you can see." in refused.content.decode()
    assert not meeting.items.exists()
    assert LedgerEntry.objects.count() == entries
    client.post(path, {"title": "Invoice layout", "change_ref": "CHG0999002"})
    assert list(meeting.items.values_list("change__ref", flat=True)) == ["CHG0999002"]


def _poll(client, meeting, cab_member):
    page = client.get(f"/cab/meetings/{meeting.pk}/").content.decode()
    start = page.index("/updates/?")
    url = page[page.rindex('"', 0, start) + 1 : page.index('"', start)].replace("&amp;", "&")
    return url


def test_other_members_see_outcomes_appear_without_reloading(
    client, payments_meeting, cab_member, second_cab_member
):
    item, _ = cab.add_agenda_item(meeting=payments_meeting, key="manual:1", kind="other", title="T")
    _run_to_outcome(client, payments_meeting, cab_member, second_cab_member)
    client.force_login(second_cab_member)
    url = _poll(client, payments_meeting, second_cab_member)
    assert parse_qs(urlsplit(url).query)["open"] == [str(item.pk)]
    assert client.get(url).status_code == 204

    cab.record_outcome(item=item, actor=cab_member, outcome="reviewed", minutes="Fine.")
    cab.add_item_by_hand(
        meeting=payments_meeting, actor=cab_member, title="Late item", detail="", change=None
    )
    response = client.get(url)

    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="item-{item.pk}" hx-swap-oob="true"' in html
    assert 'data-testid="item-outcome">Reviewed<' in html
    assert 'hx-swap-oob="beforeend:#agenda-items"' in html and "Late item" in html
    fresh = CabMeeting.objects.get(pk=payments_meeting.pk)
    assert meeting_token(fresh) in html  # the poller asks with the new version


def test_minutes_pdf_lists_attendance_and_outcomes(
    client, payments_meeting, cab_member, second_cab_member, tmp_path
):
    item, _ = cab.add_agenda_item(
        meeting=payments_meeting, key="manual:1", kind="other", title="Storage renewal"
    )
    _run_to_outcome(client, payments_meeting, cab_member, second_cab_member)
    cab.record_outcome(item=item, actor=cab_member, outcome="deferred", minutes="Need a quote.")
    cab.close_meeting(meeting=payments_meeting, actor=cab_member, notes="All done.")

    response = client.get(f"/cab/meetings/{payments_meeting.pk}/minutes.pdf")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert shutil.which("pdftotext"), "pdftotext is missing: apt-get install poppler-utils"
    path = tmp_path / "minutes.pdf"
    path.write_bytes(response.content)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "CAB minutes: Weekly CAB" in text
    assert "Quorum 2, 2 present: met." in text
    assert "Present: Carol, Cecil." in text
    assert "Storage renewal" in text and "Deferred" in text and "Need a quote." in text
    assert "Carol," in text and "All done." in text
    assert CabMeeting.objects.get(pk=payments_meeting.pk).status == "closed"


def _count_queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return len(queries)


def test_the_meeting_list_costs_the_same_for_one_meeting_and_many(
    client, cab_member, second_cab_member, service
):
    client.force_login(cab_member)
    make_meeting(cab_member, services=[service], starts_in=timedelta(days=-7), title="Old")
    make_meeting(cab_member, services=[service], title="Next")
    one = _count_queries(client, "/cab/meetings/")
    for days in range(2, 30):
        make_meeting(
            cab_member, second_cab_member, services=[service], starts_in=timedelta(days=-days)
        )
        make_meeting(cab_member, services=[service], starts_in=timedelta(days=days))

    many = _count_queries(client, "/cab/meetings/")

    html = client.get("/cab/meetings/").content.decode()
    assert html.count('href="/cab/meetings/') >= 40
    assert one == many


def test_the_meeting_page_costs_the_same_for_one_item_and_many(
    client, payments_meeting, cab_member, second_cab_member
):
    cab.add_agenda_item(meeting=payments_meeting, key="manual:0", kind="other", title="T0")
    _run_to_outcome(client, payments_meeting, cab_member, second_cab_member)
    path = f"/cab/meetings/{payments_meeting.pk}/"
    one = _count_queries(client, path)
    for n in range(1, 20):
        item, _ = cab.add_agenda_item(
            meeting=payments_meeting, key=f"manual:{n}", kind="other", title=f"T{n}"
        )
        if n % 2:
            cab.record_outcome(item=item, actor=cab_member, outcome="reviewed", minutes="Ok.")

    assert _count_queries(client, path) == one


def test_the_one_time_code_field_is_offered_where_the_stage_asks_for_it(
    client, payments_meeting, cab_member, second_cab_member, cab_release, cab_stage
):
    item, _ = cab.add_agenda_item(
        meeting=payments_meeting,
        key=f"stage:{cab_stage.pk}",
        kind=AgendaItem.Kind.CAB_APPROVAL,
        title="payments-api to production",
        release_id=cab_release.pk,
    )
    _run_to_outcome(client, payments_meeting, cab_member, second_cab_member)
    path = f"/cab/meetings/{payments_meeting.pk}/"
    assert f"id_item-{item.pk}-step_up_code" not in client.get(path).content.decode()

    ApprovalStage.objects.filter(pk=cab_stage.pk).update(step_up=True)

    assert f'id="id_item-{item.pk}-step_up_code"' in client.get(path).content.decode()


def test_items_link_to_what_they_are_about(client, payments_meeting, cab_member, cab_release):
    cab.add_agenda_item(
        meeting=payments_meeting, key="emergency:7", kind="emergency_review", title="Emergency"
    )
    cab.add_agenda_item(
        meeting=payments_meeting,
        key="stage:1",
        kind="cab_approval",
        title="Release",
        release_id=cab_release.pk,
    )
    client.force_login(cab_member)

    html = client.get(f"/cab/meetings/{payments_meeting.pk}/").content.decode()

    assert 'href="/approvals/emergencies/7/">Emergency</a>' in html
    assert f'href="/approvals/releases/{cab_release.pk}/">Release</a>' in html

"""The CAB queue: each kind of work with its count, only on the services the member sits on
the CAB for, filters, the meeting each row is on, and a query count that does not grow."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from approvals.cab.services import prepare_cab_meetings
from changes.models import ChangeRecord
from tests.approvals.cab.conftest import make_meeting, work_for

pytestmark = pytest.mark.django_db

KIND_LABELS = [
    "Escalated approval",
    "CAB approval",
    "High-risk change",
    "Emergency secondary review",
    "Post-implementation review",
    "Post-mortem",
]


def counts(response) -> dict[str, int]:
    html = response.content.decode()
    found = re.findall(r'data-kind="(\w+)">[^<]*<span class="badge[^"]*">(\d+)</span>', html)
    return {kind: int(n) for kind, n in found}


def kinds_shown(response) -> list[str]:
    return re.findall(r'<tr data-kind="(\w+)">', response.content.decode())


@pytest.fixture
def work(org, service, requester, approver, second_approver):
    work_for(service, requester, [approver, second_approver])


def test_a_member_sees_every_kind_with_its_count_overdue_first(client, cab_member, work):
    client.force_login(cab_member)

    response = client.get("/cab/")

    assert response.status_code == 200
    assert counts(response) == {
        "escalated_approval": 1,
        "cab_approval": 1,
        "high_risk_change": 1,
        "emergency_review": 1,
        "post_implementation_review": 1,
        "post_mortem": 1,
    }
    shown = kinds_shown(response)
    assert sorted(shown) == sorted(counts(response))
    # The escalated stage and the PIR are overdue: they lead.
    assert set(shown[:2]) == {"escalated_approval", "post_implementation_review"}
    for label in KIND_LABELS:
        assert label in response.content.decode()


def test_filters_narrow_the_rows_and_the_counts(client, cab_member, work, other_service):
    client.force_login(cab_member)

    assert kinds_shown(client.get("/cab/?kind=post_mortem")) == ["post_mortem"]
    overdue = client.get("/cab/?overdue=on")
    assert sorted(kinds_shown(overdue)) == ["escalated_approval", "post_implementation_review"]
    assert counts(overdue)["high_risk_change"] == 0
    elsewhere = client.get("/cab/?service=billing")
    assert kinds_shown(elsewhere) == []


def test_a_member_for_another_service_sees_none_of_it(
    client, billing_cab_member, work, other_service
):
    change = ChangeRecord.objects.create(ref="CHG-B", title="Billing rewrite", risk="high")
    change.services.set([other_service])
    client.force_login(billing_cab_member)

    response = client.get("/cab/")

    assert kinds_shown(response) == ["high_risk_change"]
    assert "Billing rewrite" in response.content.decode()
    assert "payments-api" not in response.content.decode()
    # Another service's slug is not accepted as a filter either.
    assert kinds_shown(client.get("/cab/?service=payments-api")) == ["high_risk_change"]


def test_someone_on_no_cab_gets_an_empty_queue_that_says_so(client, approver, work):
    client.force_login(approver)

    response = client.get("/cab/")

    assert response.status_code == 200
    assert kinds_shown(response) == []
    assert "You sit on no Change Advisory Board" in response.content.decode()


def test_anonymous_people_are_sent_to_sign_in(client, work):
    response = client.get("/cab/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_each_row_says_which_meeting_it_is_on(client, cab_member, second_cab_member, work):
    meeting = make_meeting(cab_member, second_cab_member, title="Tuesday CAB")
    prepare_cab_meetings(now=timezone.now())
    client.force_login(cab_member)

    html = client.get("/cab/").content.decode()

    assert html.count(f'href="/cab/meetings/{meeting.pk}/"') == 6
    assert "not on an agenda yet" not in html


def test_rows_link_to_the_release_and_the_change(client, cab_member, work):
    client.force_login(cab_member)
    html = client.get("/cab/?kind=cab_approval").content.decode()
    assert re.search(r'href="/approvals/releases/\d+/"', html)
    html = client.get("/cab/?kind=high_risk_change").content.decode()
    change = ChangeRecord.objects.get(risk="high")
    assert f'href="{reverse("changes:change_detail", kwargs={"pk": change.pk})}"' in html


def _queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/cab/").status_code == 200
    return len(queries)


def test_the_query_count_does_not_grow_with_the_rows(
    client, cab_member, second_cab_member, org, service, requester, approver, second_approver
):
    make_meeting(cab_member, second_cab_member, starts_in=timedelta(days=2))
    work_for(service, requester, [approver, second_approver], count=1)
    prepare_cab_meetings(now=timezone.now())
    client.force_login(cab_member)
    one = _queries(client)

    work_for(service, requester, [approver, second_approver], count=5)
    prepare_cab_meetings(now=timezone.now())
    many = _queries(client)

    assert len(kinds_shown(client.get("/cab/"))) == 25  # a full page
    assert one == many

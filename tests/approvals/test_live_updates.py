"""An open release page kept current: its poll answers 204 while nothing changed, and only the
live parts (out-of-band) when something did, with what happened in words and a notice on a
form that no longer applies."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from approvals import services
from approvals.models import ApprovalRequest
from tests import factories

pytestmark = pytest.mark.django_db

# Pinned: session, user, the viewer's global roles, delegations lent to the viewer (scope), and
# the one version query.
UNCHANGED_QUERIES = 5


def _poll_url(client, release) -> str:
    """Open the release page and return the URL its poller asks, with the page's version."""
    response = client.get(reverse("approvals:release_detail", args=[release.pk]))
    assert response.status_code == 200
    return response.context["live"]["url"]


def _query(url: str) -> dict[str, str]:
    return {
        key: values[0]
        for key, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items()
    }


def test_the_page_polls_its_updates_url_at_the_configured_interval(
    client, production_release, approver, settings
):
    settings.SIGNOFF_LIVE_POLL_SECONDS = 3
    client.force_login(approver)

    body = client.get(reverse("approvals:release_detail", args=[production_release.pk])).content

    page = body.decode()
    assert 'hx-trigger="every 3s, live:refresh"' in page
    assert 'aria-live="polite"' in page
    assert "js/release-live.js" in page
    url = client.get(reverse("approvals:release_detail", args=[production_release.pk])).context[
        "live"
    ]["url"]
    assert url.startswith(reverse("approvals:release_updates", args=[production_release.pk]))
    query = _query(url)
    assert query["gate"] == "pending"
    assert query["boxes"] == "decide"  # alice may decide; nothing to revoke or withdraw


def test_nothing_changed_is_a_204_in_a_pinned_number_of_queries(
    client, production_release, approver, django_assert_num_queries
):
    client.force_login(approver)
    url = _poll_url(client, production_release)
    assert client.get(url).status_code == 204  # warm-up: per-process caches

    with django_assert_num_queries(UNCHANGED_QUERIES):
        response = client.get(url)

    assert response.status_code == 204
    assert response.content == b""
    assert "no-store" in response["Cache-Control"]


def test_a_decision_made_elsewhere_returns_the_live_parts_only(
    client, production_release, approver, second_approver, django_assert_num_queries
):
    client.force_login(approver)
    url = _poll_url(client, production_release)
    client.get(url)  # warm-up
    factories.decide(production_release, second_approver, "approve", "Reviewed elsewhere.")

    with django_assert_num_queries(CHANGED_QUERIES):
        response = client.get(url)

    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    for part in ("release-poller", "release-status", "gate", "plan", "deployments", "ledger"):
        assert f'id="{part}" hx-swap-oob="true"' in body
    assert "1 of 2" in body and "Reviewed elsewhere." in body
    assert "bob approved stage Service approval." in body
    assert 'name="rationale"' not in body  # the form is never sent, so never replaced
    assert '<div id="decide-notice" role="status" hx-swap-oob="innerHTML"></div>' in body
    # The new poller carries the new version: asking again is a 204.
    assert client.get(_new_poll_url(body)).status_code == 204


# Pinned: the unchanged answer's five, then the page's own reads (the release with its stages,
# decisions, approvers, evidence and deployments; owning teams; the viewer's authority; the
# ledger entries; the policy version; the gate's hard freezes and holding incidents).
CHANGED_QUERIES = 22


def _new_poll_url(body: str) -> str:
    start = body.index('hx-get="') + len('hx-get="')
    return body[start : body.index('"', start)].replace("&amp;", "&")


def test_the_changed_answer_costs_the_same_with_more_decisions(
    client, org, service, production, pipeline_bot, approver, second_approver, auditor
):
    release, _ = services.request_approval(
        data=factories.release_input(service, production), actor=pipeline_bot
    )
    client.force_login(auditor)
    url = _poll_url(client, release)
    factories.decide(release, approver)
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    factories.decide(release, second_approver)
    with CaptureQueriesContext(connection) as two:
        assert client.get(url).status_code == 200
    assert len(one.captured_queries) == len(two.captured_queries)


def test_a_rejection_says_so_stops_polling_and_flags_the_open_form(
    client, production_release, approver, second_approver
):
    client.force_login(approver)
    url = _poll_url(client, production_release)
    factories.decide(production_release, second_approver, "reject", "No rollback plan.")

    body = client.get(url).content.decode()

    assert "bob rejected stage Service approval." in body
    assert "The gate now answers rejected (it was pending)." in body
    assert 'data-gate-status="rejected"' in body
    assert "hx-get" not in body  # final: the new poller asks no more
    assert "This form no longer applies: This request is rejected; no more decisions." in body
    assert "What you typed is kept." in body


def test_deciding_in_another_tab_flags_this_tabs_form(client, production_release, approver):
    client.force_login(approver)
    url = _poll_url(client, production_release)
    factories.decide(production_release, approver, "approve", "From my other tab.")

    body = client.get(url).content.decode()

    assert "This form no longer applies: You have already decided Service approval" in body
    assert "alice approved stage Service approval." in body


def test_a_reported_deployment_appears_and_is_announced(
    client, production_release, auditor, pipeline_bot
):
    client.force_login(auditor)
    url = _poll_url(client, production_release)
    assert _query(url)["boxes"] == ""  # an auditor has no box to type in
    services.record_deployment(release=production_release, actor=pipeline_bot, status="succeeded")

    body = client.get(url).content.decode()

    assert "unapproved · pending" in body
    assert "ci-bot reported a succeeded deployment the gate had not approved." in body
    assert "decide-notice" in body  # the decision box's notice area is always there


def test_a_request_lapsing_with_time_alone_changes_the_version_and_stops_polling(
    client, production_release, approver
):
    client.force_login(approver)
    url = _poll_url(client, production_release)
    assert client.get(url).status_code == 204
    ApprovalRequest.objects.filter(release=production_release).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )

    body = client.get(url).content.decode()

    assert 'data-gate-status="expired"' in body
    assert "The gate now answers expired (it was pending)." in body
    assert "hx-get" not in body


def test_a_withdrawal_flags_the_withdraw_box_of_another_release_manager(
    client, production_release, requester, pipeline_bot
):
    client.force_login(requester)
    url = _poll_url(client, production_release)
    assert _query(url)["boxes"] == "withdraw"
    services.withdraw_request(release=production_release, actor=pipeline_bot, reason="Superseded.")

    body = client.get(url).content.decode()

    assert "ci-bot withdrew the request." in body
    assert "This no longer applies: the request is withdrawn." in body


def test_a_revocation_elsewhere_flags_the_revoke_box(
    client, production_release, approver, second_approver
):
    factories.decide(production_release, approver)
    client.force_login(approver)
    url = _poll_url(client, production_release)
    assert _query(url)["boxes"] == "revoke"
    services.revoke_approval(release=production_release, actor=approver, reason="Missed a file.")

    body = client.get(url).content.decode()

    assert "alice revoked their approval of stage Service approval." in body
    assert "You have no approval on an open stage to take back any more." in body


@pytest.mark.parametrize(
    "query", ["v=garbage&stage=abc&boxes=evil,decide", "v=&gate=", "v=-&boxes=,,"]
)
def test_junk_in_the_query_is_treated_as_out_of_date(client, production_release, approver, query):
    client.force_login(approver)
    url = reverse("approvals:release_updates", args=[production_release.pk])

    response = client.get(f"{url}?{query}")

    assert response.status_code == 200
    assert 'data-testid="release-news"' not in response.content.decode()  # nothing to tell


def test_an_unknown_gate_answer_in_the_query_is_never_repeated(
    client, production_release, approver, second_approver
):
    client.force_login(approver)
    url = _poll_url(client, production_release).replace("gate=pending", "gate=open+sesame")
    factories.decide(production_release, second_approver, "reject", "No.")

    body = client.get(url).content.decode()

    assert "bob rejected stage Service approval." in body
    assert "sesame" not in body and "The gate now answers" not in body


def test_a_final_release_page_does_not_poll(client, production_release, approver):
    factories.decide(production_release, approver, "reject", "Not this week.")
    client.force_login(approver)

    page = client.get(reverse("approvals:release_detail", args=[production_release.pk]))

    assert page.context["live"]["final"] is True
    assert "hx-get" not in page.content.decode().split('id="release-poller"')[1].split(">")[0]

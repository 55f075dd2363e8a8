"""Asking again after a rejection, a withdrawal or an expiry: a new request linked to the old."""

from __future__ import annotations

import pytest
from django.urls import reverse

from approvals.models import ApprovalRequest, Release
from governance.models import LedgerEntry
from tests import factories

pytestmark = pytest.mark.django_db


def again(client, release):
    return client.post(f"/api/v1/releases/{release.pk}/request-again/", {})


def reject(release, approver):
    factories.decide(release, approver, "reject", "Integration tests are flaky.")


def test_a_rejected_request_is_asked_again_as_a_linked_new_request(
    api, production_release, pipeline_bot, approver
):
    reject(production_release, approver)

    response = again(api(pipeline_bot), production_release)

    assert response.status_code == 201
    body = response.json()
    new = Release.objects.get(pk=body["id"])
    assert body["status"] == "pending" and body["gate"]["status"] == "pending"
    assert new.previous == production_release
    assert (new.digest, new.change, new.triggered_by) == (
        production_release.digest,
        production_release.change,
        production_release.triggered_by,
    )
    assert list(new.evidence.values_list("kind", "status")) == [("tests", "passed")]
    entry = LedgerEntry.objects.get(kind="approval.requested", subject=f"release:{new.pk}")
    assert entry.payload["previous"] == production_release.pk
    # The conflict of interest comes along: dave still cannot approve, alice may decide anew.
    assert not new.approval.stages.filter(eligible_approvers=new.triggered_by).exists()
    factories.decide(new, approver)


def test_a_request_is_asked_again_only_once(api, production_release, pipeline_bot, approver):
    reject(production_release, approver)
    client = api(pipeline_bot)
    first = again(client, production_release)

    second = again(client, production_release)

    assert second.status_code == 409
    assert f"#{first.json()['id']}" in second.json()["error"]["message"]
    assert Release.objects.filter(previous=production_release).count() == 1


def test_a_pending_request_cannot_be_asked_again(api, production_release, pipeline_bot):
    client = api(pipeline_bot)
    with factories.nothing_changes(production_release):
        response = again(client, production_release)
    assert response.status_code == 409


def test_an_approver_cannot_ask_again_and_nothing_changes(
    api, production_release, approver, second_approver
):
    reject(production_release, approver)
    client = api(second_approver)
    with factories.nothing_changes(production_release):
        response = again(client, production_release)
    assert response.status_code == 403


def test_the_release_pages_link_the_two_requests(client, production_release, requester, approver):
    reject(production_release, approver)
    client.force_login(requester)
    old_url = reverse("approvals:release_detail", args=[production_release.pk])
    assert 'id="request-again"' in client.get(old_url).content.decode()

    response = client.post(reverse("approvals:release_request_again", args=[production_release.pk]))

    new = Release.objects.get(previous=production_release)
    assert response["Location"] == reverse("approvals:release_detail", args=[new.pk])
    new_page = client.get(response["Location"]).content.decode()
    assert 'data-testid="asks-again"' in new_page and f"#{production_release.pk}" in new_page
    old_page = client.get(old_url).content.decode()
    assert 'data-testid="asked-again"' in old_page and 'id="request-again"' not in old_page
    assert ApprovalRequest.objects.get(release=new).status == "pending"

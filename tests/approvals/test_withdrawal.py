"""Withdrawing a pending request: who may, what it leaves behind, and what the gate then says."""

from __future__ import annotations

import pytest
from django.urls import reverse

from approvals.exceptions import InvalidTransition
from approvals.models import ApprovalRequest, ApprovalStage
from governance.models import LedgerEntry
from tests import factories

pytestmark = pytest.mark.django_db


def withdraw(client, release, reason="Found a bug in the migration."):
    return client.post(f"/api/v1/releases/{release.pk}/withdraw/", {"reason": reason})


def test_the_pipeline_withdraws_its_request_and_the_gate_says_who_and_why(
    api, production_release, pipeline_bot, approver, client
):
    response = withdraw(api(pipeline_bot), production_release)

    assert response.status_code == 200
    gate = response.json()
    assert gate["status"] == "rejected"
    assert gate["reasons"][0].startswith("Withdrawn by ci-bot at ")
    assert gate["reasons"][0].endswith(": Found a bug in the migration.")
    approval = ApprovalRequest.objects.get(release=production_release)
    assert (approval.status, approval.withdrawn_by, approval.withdrawal_reason) == (
        "withdrawn",
        pipeline_bot,
        "Found a bug in the migration.",
    )
    assert set(approval.stages.values_list("status", flat=True)) == {ApprovalStage.Status.CANCELLED}
    kinds = LedgerEntry.objects.filter(subject=f"release:{production_release.pk}")
    assert list(kinds.values_list("kind", flat=True))[-2:] == [
        "gate.transition",
        "approval.withdrawn",
    ]
    client.force_login(approver)
    assert production_release.version not in client.get(reverse("approvals:queue")).content.decode()
    with factories.nothing_changes(production_release), pytest.raises(InvalidTransition):
        factories.decide(production_release, approver)


def test_the_person_who_triggered_it_withdraws_from_the_release_page(
    client, production_release, requester
):
    client.force_login(requester)
    page = client.get(reverse("approvals:release_detail", args=[production_release.pk]))
    assert 'id="withdraw"' in page.content.decode()

    response = client.post(
        reverse("approvals:release_withdraw", args=[production_release.pk]),
        {"reason": "Wrong artifact."},
    )

    assert response.status_code == 302
    approval = ApprovalRequest.objects.get(release=production_release)
    assert (approval.status, approval.withdrawn_by) == ("withdrawn", requester)


@pytest.mark.parametrize(
    ("persona", "status", "code"),
    [("approver", 403, "not_eligible"), ("cab_member", 403, "not_eligible")],
)
def test_approvers_cannot_withdraw_and_nothing_changes(
    request, api, production_release, persona, status, code
):
    client = api(request.getfixturevalue(persona))
    with factories.nothing_changes(production_release):
        response = withdraw(client, production_release)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_approvers_are_not_offered_the_withdraw_form(client, production_release, approver):
    client.force_login(approver)
    page = client.get(reverse("approvals:release_detail", args=[production_release.pk]))
    assert 'id="withdraw"' not in page.content.decode()


def test_a_withdrawal_needs_a_reason(api, production_release, pipeline_bot):
    client = api(pipeline_bot)
    with factories.nothing_changes(production_release):
        response = withdraw(client, production_release, reason="  ")
    assert response.status_code == 400
    assert "reason" in response.json()["error"]["fields"]


def test_an_approved_request_cannot_be_withdrawn(
    api, production_release, pipeline_bot, approver, second_approver, cab_member
):
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)
    client = api(pipeline_bot)
    with factories.nothing_changes(production_release):
        response = withdraw(client, production_release)
    assert response.status_code == 409
    assert "only a pending request" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("persona", "status"),
    [(None, 302), ("outsider", 404), ("approver", 302), ("auditor", 302)],
)
def test_the_withdraw_page_action_refuses_everyone_else_and_changes_nothing(
    client, request, production_release, persona, status
):
    if persona:
        client.force_login(request.getfixturevalue(persona))
    url = reverse("approvals:release_withdraw", args=[production_release.pk])

    with factories.nothing_changes(production_release):
        response = client.post(url, {"reason": "Not mine to withdraw."})

    assert response.status_code == status
    if persona is None:
        assert response["Location"].startswith(reverse("login"))
    assert ApprovalRequest.objects.get(release=production_release).status == "pending"

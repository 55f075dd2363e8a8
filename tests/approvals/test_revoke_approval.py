"""Taking back one's own approval while its stage is still open (as GitLab allows)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from approvals.exceptions import InvalidTransition
from approvals.models import ApprovalStage, Decision
from approvals.services import revoke_approval
from governance.models import LedgerEntry
from tests import factories

pytestmark = pytest.mark.django_db


def revoke(client, release, reason="I missed the schema change."):
    return client.post(f"/api/v1/releases/{release.pk}/decisions/revoke/", {"reason": reason})


def first_stage(release) -> ApprovalStage:
    return release.approval.stages.get(position=1)


def test_an_approver_takes_back_an_approval_and_it_no_longer_counts(
    api, production_release, approver
):
    factories.decide(production_release, approver)
    assert first_stage(production_release).approval_count == 1

    response = revoke(api(approver), production_release)

    assert response.status_code == 200
    assert response.json()["stages"][0]["approvals"] == []
    assert first_stage(production_release).approval_count == 0
    decision = Decision.all_objects.get(approver=approver)
    assert decision.revocation_reason == "I missed the schema change."
    assert not Decision.objects.filter(approver=approver).exists()
    entry = LedgerEntry.objects.filter(subject=f"release:{production_release.pk}").last()
    assert (entry.kind, entry.actor, entry.payload["stage"]) == (
        "decision.revoked",
        "alice",
        "service",
    )


def test_after_revoking_the_same_person_may_decide_again(
    production_release, approver, second_approver
):
    factories.decide(production_release, approver)
    revoke_approval(release=production_release, actor=approver, reason="Re-reviewing.")

    factories.decide(production_release, approver, "approve", "Re-reviewed; fine.")
    factories.decide(production_release, second_approver)

    stage = first_stage(production_release)
    assert (stage.status, stage.approval_count) == (ApprovalStage.Status.APPROVED, 2)


def test_an_approval_on_a_completed_stage_cannot_be_taken_back(
    production_release, approver, second_approver
):
    factories.decide(production_release, approver)
    factories.decide(production_release, second_approver)  # the service stage is complete

    with factories.nothing_changes(production_release), pytest.raises(InvalidTransition):
        revoke_approval(release=production_release, actor=approver, reason="Too late.")


def test_nobody_revokes_someone_elses_approval(api, production_release, approver, second_approver):
    factories.decide(production_release, approver)
    client = api(second_approver)

    with factories.nothing_changes(production_release):
        response = revoke(client, production_release)

    assert response.status_code == 409
    assert first_stage(production_release).approval_count == 1


def test_revoking_needs_a_reason(api, production_release, approver):
    factories.decide(production_release, approver)
    client = api(approver)
    with factories.nothing_changes(production_release):
        response = revoke(client, production_release, reason="")
    assert response.status_code == 400


def test_the_release_page_offers_revoking_only_to_the_approver(
    client, production_release, approver, second_approver
):
    factories.decide(production_release, approver)
    url = reverse("approvals:release_detail", args=[production_release.pk])
    client.force_login(second_approver)
    assert 'id="revoke"' not in client.get(url).content.decode()
    client.force_login(approver)
    assert 'id="revoke"' in client.get(url).content.decode()

    response = client.post(
        reverse("approvals:release_revoke", args=[production_release.pk]),
        {"reason": "Spotted a problem."},
    )

    assert response.status_code == 302
    assert first_stage(production_release).approval_count == 0


@pytest.mark.parametrize(("persona", "status"), [(None, 302), ("outsider", 404)])
def test_the_revoke_page_action_refuses_others(
    client, request, production_release, approver, persona, status
):
    factories.decide(production_release, approver)
    if persona:
        client.force_login(request.getfixturevalue(persona))
    with factories.nothing_changes(production_release):
        response = client.post(
            reverse("approvals:release_revoke", args=[production_release.pk]), {"reason": "x"}
        )
    assert response.status_code == status

"""Deployment reports: every deployment is recorded, and one the gate had not approved is a
finding that nobody can miss (invariant 10)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from approvals.models import Deployment, Release
from approvals.presenters import release_status
from governance.models import LedgerEntry, Notification
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(service):
    user = factories.UserFactory(username="olga", first_name="Olga")
    service.owners.add(user)
    return user


def approve_fully(release, approver, second_approver, cab_member):
    for person in (approver, second_approver, cab_member):
        factories.decide(release, person)


def report(api, user, release, **body):
    return api(user).post(
        f"/api/v1/releases/{release.pk}/deployments/", {"status": "succeeded", **body}
    )


def test_a_deployment_of_a_pending_release_is_recorded_as_unapproved(
    api, production_release, pipeline_bot, administrator, owner
):
    response = report(api, pipeline_bot, production_release)

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    assert body["deployment"]["approved"] is False
    assert body["deployment"]["gate_status"] == "pending"
    assert body["deployment"]["digest"] == production_release.digest
    deployment = Deployment.objects.get()
    assert (deployment.approved, deployment.gate_status) == (False, "pending")
    assert deployment.gate_reasons[0].startswith("Waiting for")
    release = Release.objects.get(pk=production_release.pk)
    assert release.unapproved_deployment_at == deployment.created_at
    assert release.deployed_at == deployment.created_at
    entry = LedgerEntry.objects.filter(subject=f"release:{release.pk}").last()
    assert entry.kind == "deployment.unapproved"
    assert (entry.payload["gate"], entry.payload["digest"]) == ("pending", release.digest)
    told = set(Notification.objects.values_list("recipient__username", flat=True).distinct())
    assert {"ada", "olga"} <= told
    assert Notification.objects.filter(subject__startswith="Unapproved deployment").count() == 2


def test_an_approved_release_deployed_with_its_own_digest_is_a_normal_deployment(
    api, production_release, pipeline_bot, approver, second_approver, cab_member
):
    approve_fully(production_release, approver, second_approver, cab_member)
    notes = Notification.objects.count()

    response = report(api, pipeline_bot, production_release)

    assert response.json()["deployment"]["approved"] is True
    deployment = Deployment.objects.get()
    assert (deployment.approved, deployment.gate_status) == (True, "approved")
    assert Release.objects.get(pk=production_release.pk).unapproved_deployment_at is None
    kinds = list(LedgerEntry.objects.order_by("-pk").values_list("kind", flat=True)[:2])
    # The deployment, then the change record it implements moving on.
    assert kinds == ["change.state_changed", "deployment.reported"]
    assert Notification.objects.count() == notes


def test_deploying_another_digest_of_an_approved_release_is_unapproved(
    api, production_release, pipeline_bot, approver, second_approver, cab_member
):
    approve_fully(production_release, approver, second_approver, cab_member)
    other = factories.digest("something else")

    response = report(api, pipeline_bot, production_release, digest=other)

    deployment = Deployment.objects.get()
    assert response.json()["deployment"]["approved"] is False
    assert (deployment.digest, deployment.gate_status) == (other, "blocked")
    assert "is not the approved artifact" in deployment.gate_reasons[0]
    entry = LedgerEntry.objects.filter(kind__startswith="deployment.").last()
    assert (entry.kind, entry.payload["approved_digest"]) == (
        "deployment.unapproved",
        production_release.digest,
    )


def test_a_malformed_deployed_digest_is_refused_and_nothing_is_written(
    api, production_release, pipeline_bot
):
    with factories.nothing_changes(production_release):
        client = api(pipeline_bot)
    with factories.nothing_changes(production_release):
        response = client.post(
            f"/api/v1/releases/{production_release.pk}/deployments/",
            {"status": "succeeded", "digest": "sha256:abc"},
        )
    assert response.status_code == 400
    assert "digest" in response.json()["error"]["fields"]


def test_the_release_page_list_and_dashboard_show_the_unapproved_deployment(
    client, api, production_release, pipeline_bot, approver
):
    report(api, pipeline_bot, production_release)
    client.force_login(approver)

    page = client.get(reverse("approvals:release_detail", args=[production_release.pk]))
    body = page.content.decode()
    assert 'data-testid="unapproved-deployment"' in body
    assert "Deployed without approval" in body
    assert "unapproved · pending" in body

    listed = client.get(reverse("approvals:release_list"), {"status": "unapproved"})
    assert [r.pk for r in listed.context["page"].object_list] == [production_release.pk]
    assert "Unapproved" in listed.content.decode()
    assert (
        not client.get(reverse("approvals:release_list"), {"status": "pending"})
        .context["page"]
        .object_list
    )

    dashboard = client.get(reverse("reporting:dashboard"))
    assert dashboard.context["counts"]["unapproved"] == 1
    assert 'data-testid="unapproved-count"' in dashboard.content.decode()


def test_a_normal_deployment_shows_no_warning(
    client, api, production_release, pipeline_bot, approver, second_approver, cab_member
):
    approve_fully(production_release, approver, second_approver, cab_member)
    report(api, pipeline_bot, production_release)
    client.force_login(approver)

    body = client.get(reverse("approvals:release_detail", args=[production_release.pk]))
    assert 'data-testid="unapproved-deployment"' not in body.content.decode()
    dashboard = client.get(reverse("reporting:dashboard"))
    assert dashboard.context["counts"]["unapproved"] == 0
    assert 'data-testid="unapproved-count"' not in dashboard.content.decode()


def test_a_release_whose_last_deployment_failed_shows_as_failed_until_a_later_one_succeeds(
    client, api, production_release, pipeline_bot, approver, second_approver, cab_member
):
    approve_fully(production_release, approver, second_approver, cab_member)
    client.force_login(approver)
    listing = reverse("approvals:release_list")
    page = reverse("approvals:release_detail", args=[production_release.pk])

    report(api, pipeline_bot, production_release, status="failed")
    assert release_status(client.get(listing).context["page"].object_list[0]) == "failed"
    assert release_status(client.get(page).context["page"].release) == "failed"

    report(api, pipeline_bot, production_release, status="succeeded")
    assert release_status(client.get(listing).context["page"].object_list[0]) == "deployed"

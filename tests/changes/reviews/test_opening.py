"""Reviews open by themselves: a failed or rolled back deployment of an approved release, an
unapproved deployment, and a deployed emergency change (its post-mortem). Each once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from approvals.models import Deployment, Release
from changes.reviews.models import Review
from governance.models import LedgerEntry, Notification
from tests import factories

pytestmark = pytest.mark.django_db


def review_entries() -> list[tuple[str, str]]:
    return list(
        LedgerEntry.objects.filter(kind__startswith="review.")
        .order_by("seq")
        .values_list("kind", "subject")
    )


def test_a_failed_deployment_of_an_approved_release_opens_one_review(
    approved_release, deploy, owner
):
    deployment = deploy(approved_release, "failed")

    review = Review.objects.get()
    assert (review.kind, review.trigger, review.status) == (
        "post_implementation",
        "deployment_failed",
        "open",
    )
    assert review.release_id == approved_release.pk
    assert review.change == approved_release.change
    assert review.service == approved_release.service
    assert review.opened_at == deployment.created_at
    assert review.due_at == deployment.created_at + timedelta(hours=120)
    assert review.summary == (
        f"The approved deployment of payments-api {approved_release.version} to Production failed."
    )
    assert review_entries() == [("review.opened", f"review:{review.pk}")]
    note = Notification.objects.get(reason="review opened")
    assert note.recipient == owner
    assert note.subject == f"Post-implementation review due: {approved_release.change.ref}"
    assert note.url == f"/changes/reviews/{review.pk}/"


def test_a_second_failure_report_opens_nothing(approved_release, deploy, owner):
    deploy(approved_release, "failed")
    notes = Notification.objects.count()

    deploy(approved_release, "failed")

    assert Review.objects.count() == 1
    assert [kind for kind, _ in review_entries()] == ["review.opened"]
    assert Notification.objects.count() == notes


def test_the_due_time_of_a_review_follows_the_setting(approved_release, deploy, settings):
    settings.SIGNOFF_REVIEW_DUE_HOURS = 48

    deployment = deploy(approved_release, "failed")

    assert Review.objects.get().due_at == deployment.created_at + timedelta(hours=48)


def test_a_rolled_back_deployment_opens_one_review(approved_release, deploy, owner):
    deploy(approved_release, "rolled_back")
    deploy(approved_release, "rolled_back")

    review = Review.objects.get()
    assert (review.kind, review.trigger) == ("post_implementation", "rolled_back")
    assert review.summary == (
        f"The deployment of payments-api {approved_release.version} to Production was rolled back."
    )
    assert Release.objects.get(pk=approved_release.pk).deployed_at is None


def test_the_pipeline_api_accepts_a_rolled_back_deployment(
    api, approved_release, pipeline_bot, owner
):
    response = api(pipeline_bot).post(
        f"/api/v1/releases/{approved_release.pk}/deployments/", {"status": "rolled_back"}
    )

    assert response.status_code == 201
    assert response.json()["deployment"]["status"] == "rolled_back"
    assert Deployment.objects.get().status == "rolled_back"
    assert Review.objects.get().trigger == "rolled_back"


def test_the_pipeline_api_refuses_an_unknown_deployment_status(api, approved_release, pipeline_bot):
    response = api(pipeline_bot).post(
        f"/api/v1/releases/{approved_release.pk}/deployments/", {"status": "exploded"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["status"] == ['"exploded" is not a valid choice.']
    assert (Deployment.objects.count(), Review.objects.count()) == (0, 0)


def test_an_unapproved_deployment_opens_one_review(production_release, deploy, owner):
    deploy(production_release, "succeeded")
    deploy(production_release, "failed")

    review = Review.objects.get()
    assert (review.kind, review.trigger) == ("post_implementation", "unapproved_deployment")
    assert review.summary == (
        f"payments-api {production_release.version} to Production was deployed while the gate "
        "said 'pending'."
    )
    # The failure of an unapproved deployment is the same finding: no second review for it.
    assert review_entries() == [("review.opened", f"review:{review.pk}")]


def test_a_successful_approved_deployment_opens_nothing(approved_release, deploy, owner):
    deploy(approved_release, "succeeded")

    assert Review.objects.count() == 0
    assert review_entries() == []


def test_a_deployed_emergency_change_gets_its_post_mortem_due_in_72_hours(
    emergency_release, declared, deploy, web_owner
):
    deployment = deploy(emergency_release, "succeeded")

    assert deployment.approved is True
    review = Review.objects.get()
    assert (review.kind, review.trigger) == ("post_mortem", "emergency")
    assert review.due_at == deployment.created_at + timedelta(hours=72)
    assert review.release_id == emergency_release.pk
    assert review.summary == (
        f"Emergency change {emergency_release.change.ref} was deployed (web-frontend "
        f"{emergency_release.version} to Dev); its post-mortem must say whether the emergency "
        "was justified."
    )
    note = Notification.objects.get(reason="review opened")
    assert (note.recipient, note.subject) == (
        web_owner,
        f"Post-mortem due: {emergency_release.change.ref}",
    )


def test_an_emergency_change_has_one_post_mortem_however_many_deployments(
    emergency_release, declared, deploy, pipeline_bot, low_tier_service, dev
):
    from approvals import services

    deploy(emergency_release, "succeeded")
    first = Review.objects.get()
    # A second release of the same emergency change, deployed later.
    second, _ = services.request_approval(
        data=factories.release_input(
            low_tier_service,
            dev,
            triggered_by="dave",
            change_type="emergency",
            change_ref=emergency_release.change.ref,
        ),
        actor=pipeline_bot,
    )
    deploy(second, "succeeded")
    deploy(emergency_release, "succeeded")

    assert list(Review.objects.values_list("pk", flat=True)) == [first.pk]
    assert [kind for kind, _ in review_entries()] == ["review.opened"]


def test_a_failed_emergency_deployment_opens_a_review_but_no_post_mortem_yet(
    emergency_release, declared, deploy
):
    deploy(emergency_release, "failed")

    review = Review.objects.get()
    assert (review.kind, review.trigger) == ("post_implementation", "deployment_failed")

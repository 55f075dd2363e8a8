"""Post-deploy verification by polling: the policy opens a window on a successful deployment,
beat's task polls the service's health URLs (a real server on 127.0.0.1), and the first failure
fails the deployment, calls the rollback hook once, ledgers it, opens a review and tells the
team's subscribers; a window without a failure passes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from approvals import services
from approvals.emergencies.services import declare_emergency
from approvals.models import Deployment
from approvals.verification import polling
from approvals.verification.models import HealthCheck
from approvals.verification.tasks import verify_deployments_task
from changes.reviews.models import Review
from governance.models import LedgerEntry, Notification
from governance.notifications import outbox
from governance.notifications.models import Delivery, Subscription
from governance.notifications.outbox import sign
from tests import factories
from tests.approvals.emergencies.helpers import declarer_for
from tests.approvals.verification.conftest import SECRET

pytestmark = pytest.mark.django_db


@pytest.fixture
def watched(approved_release, service, stub, deploy):
    """A deployment of the approved release, its service polled at /healthz, with a hook."""
    service.health_urls = [stub.url("/healthz")]
    service.save(update_fields=["health_urls"])
    return deploy(approved_release, rollback_url=stub.url("/rollback?job=payments"))


def fresh(deployment: Deployment) -> Deployment:
    return Deployment.objects.get(pk=deployment.pk)


def kinds(release) -> list[str]:
    return list(
        LedgerEntry.objects.filter(subject=f"release:{release.pk}")
        .order_by("seq")
        .values_list("kind", flat=True)
    )


def test_the_policy_opens_a_fifteen_minute_window_on_a_successful_deployment(watched):
    deployment = fresh(watched)

    assert deployment.verification == "verifying"
    assert deployment.verify_until == deployment.created_at + timedelta(minutes=15)
    assert deployment.verification_interval == 60
    assert deployment.next_check_at == deployment.created_at
    entry = LedgerEntry.objects.filter(kind="deployment.reported").get()
    assert entry.payload["verification"] == {
        "until": deployment.verify_until.isoformat(),
        "interval_seconds": 60,
        "rollback_url": deployment.rollback_url,
    }


def test_no_window_opens_where_the_policy_asks_none_or_the_deployment_failed(
    approved_release, low_tier_service, production, pipeline_bot, deploy
):
    tier_3, _ = services.request_approval(
        data=factories.release_input(low_tier_service, production), actor=pipeline_bot
    )
    failed = services.record_deployment(
        release=approved_release, actor=pipeline_bot, status="failed"
    )

    for deployment in (deploy(tier_3), failed):
        deployment = fresh(deployment)
        assert (deployment.verification, deployment.verify_until) == ("", None)
        assert deployment.next_check_at is None
    assert polling.verify_due() == 0


def test_a_healthy_poll_is_recorded_and_the_next_one_planned(watched, stub):
    now = watched.created_at + timedelta(seconds=1)

    assert polling.verify_due(now) == 1

    deployment = fresh(watched)
    assert deployment.verification == "verifying"
    assert deployment.next_check_at == now + timedelta(seconds=60)
    check = HealthCheck.objects.get()
    assert (check.source, check.healthy, check.url) == ("poll", True, stub.url("/healthz"))
    assert check.detail == "answered 200 OK"
    assert stub.received("GET", "/healthz")[0].headers["User-Agent"] == "Signoff-Verification/1"
    # Not due again yet: nothing more is polled.
    assert polling.verify_due(now + timedelta(seconds=30)) == 0
    assert HealthCheck.objects.count() == 1


def test_an_unhealthy_poll_fails_the_deployment_calls_the_rollback_hook_once_and_opens_a_review(
    watched, stub, approved_release, team, administrator, settings
):
    settings.SIGNOFF_OUTBOUND_ALLOW_PRIVATE = True
    Subscription.objects.create(
        team=team,
        name="payments on-call",
        channel="webhook",
        url=stub.url("/team-hook"),
        events=["release.verification_failed"],
        created_by=administrator,
    )
    start = watched.created_at
    polling.verify_due(start)
    stub.health_status = 503

    polling.verify_due(start + timedelta(seconds=60))

    deployment = fresh(watched)
    assert (deployment.status, deployment.verification) == ("failed", "failed")
    assert deployment.verified_at == start + timedelta(seconds=60)
    assert deployment.next_check_at is None
    url = stub.url("/healthz")
    assert deployment.verification_detail == f"{url} answered 503 Service Unavailable"
    assert list(HealthCheck.objects.values_list("healthy", flat=True)) == [True, False]
    # The release's ledger: the deployment (with its window), then the failure.
    assert kinds(approved_release)[-2:] == ["deployment.reported", "deployment.verification_failed"]
    entry = LedgerEntry.objects.get(kind="deployment.verification_failed")
    assert entry.actor == "system"
    assert entry.payload["failures"] == [
        {"url": url, "reported_by": "", "detail": "answered 503 Service Unavailable"}
    ]
    assert entry.payload["rollback_url"] == deployment.rollback_url
    review = Review.objects.get()
    assert (review.trigger, review.kind, review.release_id) == (
        "deployment_failed",
        "post_implementation",
        approved_release.pk,
    )
    assert "failed post-deploy verification" in review.summary
    assert LedgerEntry.objects.filter(kind="review.opened", subject=f"review:{review.pk}").exists()

    # After commit the outbox sends the hook and the team's event; again sends nothing.
    assert outbox.deliver_due() == 2
    assert outbox.deliver_due() == 0
    (hook,) = stub.received("POST", "/rollback?job=payments")
    body = json.loads(hook.body)
    assert body["event"] == "release.rollback"
    assert (body["release"], body["deployment"], body["digest"]) == (
        approved_release.pk,
        deployment.pk,
        approved_release.digest,
    )
    assert (
        body["reason"] == f"Post-deploy verification failed: {url} answered 503 Service Unavailable"
    )
    assert hook.headers["X-Signoff-Event"] == "release.rollback"
    assert hook.headers["X-Signoff-Signature"] == sign(hook.body, SECRET)
    (event,) = stub.received("POST", "/team-hook")
    assert json.loads(event.body)["kind"] == "release.verification_failed"
    assert json.loads(event.body)["payload"]["rollback_requested"] is True


def test_later_polls_leave_a_failed_deployment_alone(watched, stub):
    stub.health_status = 500
    polling.verify_due(watched.created_at)
    stub.health_status = 200

    assert polling.verify_due(watched.created_at + timedelta(minutes=5)) == 0
    assert polling.verify_due(watched.created_at + timedelta(minutes=20)) == 0
    assert fresh(watched).verification == "failed"
    assert HealthCheck.objects.count() == 1
    assert LedgerEntry.objects.filter(kind__startswith="deployment.verif").count() == 1


@pytest.mark.parametrize(
    ("status", "detail"),
    [(302, "answered 302 Found"), (404, "answered 404 Not Found")],
)
def test_redirects_and_other_answers_are_failures(watched, stub, status, detail):
    stub.health_status = status

    polling.verify_due(watched.created_at)

    assert fresh(watched).verification == "failed"
    assert HealthCheck.objects.get().detail == detail
    assert stub.received("GET", "/elsewhere") == []  # the redirect is never followed


def test_an_unreachable_health_url_is_a_failure(watched, service):
    service.health_urls = ["http://127.0.0.1:9/healthz"]  # the discard port: nobody listens
    service.save(update_fields=["health_urls"])

    polling.verify_due(watched.created_at)

    deployment = fresh(watched)
    assert deployment.verification == "failed"
    assert deployment.verification_detail == (
        "http://127.0.0.1:9/healthz could not be reached (ConnectionError)"
    )


def test_a_window_without_a_failure_passes_and_calls_no_hook(watched, stub, approved_release):
    start = watched.created_at
    for minute in (0, 1, 2):
        polling.verify_due(start + timedelta(minutes=minute))

    assert polling.verify_due(start + timedelta(minutes=15)) == 1

    deployment = fresh(watched)
    assert (deployment.status, deployment.verification) == ("succeeded", "passed")
    assert deployment.verification_detail == "3 health check(s) in 15 minutes, all healthy."
    assert deployment.verified_at == start + timedelta(minutes=15)
    assert kinds(approved_release)[-1] == "deployment.verified"
    assert not Delivery.objects.filter(kind="release.rollback").exists()
    assert not Review.objects.exists()
    assert polling.verify_due(start + timedelta(minutes=16)) == 0


def test_the_last_poll_is_planned_at_the_window_s_end_never_after_it(watched):
    polling.verify_due(watched.created_at + timedelta(minutes=14, seconds=30))

    assert fresh(watched).next_check_at == watched.verify_until


def test_a_window_without_any_health_signal_is_unverified_not_passed(
    approved_release, deploy, service
):
    service.owners.add(factories.UserFactory(username="olga"))
    deployment = deploy(approved_release, rollback_url="https://ci.example.com/rollback")
    start = deployment.created_at
    # No health URL: nothing to poll, so the next look is the end of the window.
    polling.verify_due(start)
    assert fresh(deployment).next_check_at == deployment.verify_until

    polling.verify_due(deployment.verify_until)

    deployment = fresh(deployment)
    assert (deployment.status, deployment.verification) == ("succeeded", "")
    assert deployment.verification_detail.startswith("Unverified: no health signal in 15 minutes")
    assert kinds(approved_release)[-1] == "deployment.unverified"
    assert not Delivery.objects.filter(kind="release.rollback").exists()
    # The owners hear of it: the service probably lacks its health URLs.
    told = Notification.objects.get(recipient__username="olga")
    assert told.subject == f"Deployment not verified: {approved_release}"


def test_a_second_worker_never_claims_a_deployment_already_claimed(watched):
    now = watched.created_at
    seen_at = fresh(watched).next_check_at

    assert polling.claim(watched.pk, seen_at, now) is True
    # A second worker read the same row before the first claimed it: its claim matches nothing.
    assert polling.claim(watched.pk, seen_at, now) is False
    assert polling.claim_due(now) == []
    assert polling.verify_due(now) == 0
    assert HealthCheck.objects.count() == 0


def test_the_task_is_idempotent(watched, stub):
    assert verify_deployments_task() == 1
    assert verify_deployments_task() == 0

    assert HealthCheck.objects.count() == 1
    assert len(stub.received("GET", "/healthz")) == 1


def test_batches_are_bounded(approved_release, deploy, monkeypatch):
    monkeypatch.setattr(polling, "BATCH", 2)
    deployments = [deploy(approved_release) for _ in range(3)]
    now = deployments[-1].created_at

    assert polling.verify_due(now) == 2
    assert polling.verify_due(now) == 1
    assert polling.verify_due(now) == 0


@pytest.mark.parametrize(
    ("controls", "window"),
    [(["extra_monitoring", "post_deploy_verification"], True), (["extra_monitoring"], False)],
)
def test_an_emergency_that_chose_post_deploy_verification_is_verified(
    org, low_tier_service, production, pipeline_bot, controls, window
):
    release, _ = services.request_approval(
        data=factories.release_input(low_tier_service, production, change_type="emergency"),
        actor=pipeline_bot,
    )
    declare_emergency(
        actor=declarer_for(release),
        service=release.service,
        title="",
        justification="Checkout is down for every customer.",
        incident=None,
        outage="Checkout returns 500 for every request.",
        controls=controls,
        hours=4,
        change=release.change,
    )

    deployment = fresh(
        services.record_deployment(release=release, actor=pipeline_bot, status="succeeded")
    )

    if window:
        assert deployment.verification == "verifying"
        assert deployment.verify_until == deployment.created_at + timedelta(minutes=15)
    else:
        assert (deployment.verification, deployment.verify_until) == ("", None)

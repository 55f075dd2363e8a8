"""Post-deploy verification: a window after a successful deployment in which the service's
health decides whether the deployment stands.

The window opens when the pipeline reports a successful deployment of a release whose plan asks
for it (`require: verification:`). Until it ends, beat's task polls the service's health URLs
and pipelines may report health through the API. The first unhealthy result fails the
deployment: its rollback hook is called through the outbox, subscribers hear
`release.verification_failed` and a post-implementation review opens. A window that ends with
healthy results only passes; one that ends without any health signal is closed as
*unverified* (verification back to "", with the reason), never called passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from approvals.announcements import announce
from approvals.emergencies.models import EmergencyException
from approvals.models import Deployment, Release
from approvals.verification.exceptions import VerificationClosed
from approvals.verification.models import HealthCheck
from changes.records.models import ChangeRecord
from changes.reviews import services as reviews
from changes.reviews.models import Review
from governance.ledger import services as ledger
from governance.models import User
from governance.notifications import outbox
from governance.notifications.services import notify
from governance.policy.engine import VERIFICATION_DEFAULT_INTERVAL, Plan

Verification = Deployment.Verification
# The emergency control (governance.policy.engine.DEFAULT_CONTROLS) that promises verification.
EMERGENCY_CONTROL = "post_deploy_verification"
EMERGENCY_MINUTES = 15


@dataclass(frozen=True)
class HealthResult:
    """One health signal: a poll of `url`, or a report (no url) by `reported_by`."""

    healthy: bool
    detail: str
    url: str = ""
    source: str = HealthCheck.Source.POLL
    reported_by: str = ""


def window_fields(release: Release, status: str, now: datetime) -> dict[str, Any]:
    """The fields that open a verification window on a new deployment, or {} when nothing asks
    for one or the deployment did not succeed (a failed one is already failed).

    The release's plan asks (`require: verification:`); so does an emergency whose declarer
    chose post-deploy verification as a compensating control, with the default window when
    the plan names none.
    """
    if status != Deployment.Status.SUCCEEDED:
        return {}
    approval = getattr(release, "approval", None)
    window = Plan.from_dict(approval.plan).verification if approval else None
    window = window or _emergency_window(release)
    if not window:
        return {}
    return {
        "verification": Verification.VERIFYING,
        "verify_until": now + timedelta(minutes=window["minutes"]),
        "verification_interval": window["interval_seconds"],
        "next_check_at": now,
    }


def _emergency_window(release: Release) -> dict[str, int] | None:
    """The default window when the release's emergency chose post-deploy verification as a
    compensating control; releases of other changes cost no query."""
    if release.change.type != ChangeRecord.Type.EMERGENCY:
        return None
    emergency = EmergencyException.objects.filter(change_id=release.change_id).first()
    if emergency is None or EMERGENCY_CONTROL not in emergency.controls:
        return None
    return {"minutes": EMERGENCY_MINUTES, "interval_seconds": VERIFICATION_DEFAULT_INTERVAL}


def report_health(
    *, deployment: Deployment, actor: User, healthy: bool, detail: str = ""
) -> HealthCheck:
    """Record a health report from the pipeline inside the window; an unhealthy one fails the
    deployment at once. Outside the window: VerificationClosed, and nothing is written."""
    now = timezone.now()
    with transaction.atomic(), ledger.deferred():
        locked = _lock(deployment.pk)
        if locked.verification != Verification.VERIFYING or locked.verify_until <= now:
            raise VerificationClosed(_closed_message(locked, now))
        result = HealthResult(
            healthy=healthy,
            detail=detail,
            source=HealthCheck.Source.REPORT,
            reported_by=actor.username,
        )
        (check,) = _store(locked, [result], now)
        if healthy:
            ledger.append(
                kind="deployment.health_reported",
                subject=f"release:{locked.release_id}",
                actor=actor.username,
                payload={"deployment": locked.pk, "healthy": True, "detail": detail},
            )
        else:
            _fail(locked, [result], actor, now)
    return check


def record_polls(*, deployment_id: int, results: list[HealthResult], now: datetime) -> bool:
    """Store one round of polls; fail the deployment on any unhealthy result, otherwise plan the
    next round (never past the window's end, when the window is closed). Returns whether the
    deployment is still verifying. A deployment decided meanwhile (a report) is left alone."""
    with transaction.atomic(), ledger.deferred():
        locked = _lock(deployment_id)
        if locked.verification != Verification.VERIFYING:
            return False
        _store(locked, results, now)
        failures = [r for r in results if not r.healthy]
        if failures:
            _fail(locked, failures, None, now)
            return False
        step = timedelta(seconds=locked.verification_interval)
        # No URL to poll: only a report can arrive, so the next look is the window's end.
        upcoming = now + step if results else locked.verify_until
        Deployment.objects.filter(pk=locked.pk).update(
            next_check_at=min(upcoming, locked.verify_until)
        )
    return True


def close_window(*, deployment_id: int, now: datetime) -> str:
    """End a window that ran its course without a failure: passed when health was seen, or
    unverified (verification "", the reason in the detail) when nothing was. Returns the
    outcome ("passed", "unverified", or "" when it was already decided)."""
    with transaction.atomic(), ledger.deferred():
        locked = _lock(deployment_id)
        if locked.verification != Verification.VERIFYING:
            return ""
        seen = locked.health_checks.count()
        minutes = _window_minutes(locked)
        if seen:
            outcome, kind = Verification.PASSED, "deployment.verified"
            detail = f"{seen} health check(s) in {minutes} minutes, all healthy."
        else:
            outcome, kind = Verification.NOT_REQUIRED, "deployment.unverified"
            detail = (
                f"Unverified: no health signal in {minutes} minutes (the service has no health "
                "URL and the pipeline reported no health)."
            )
        _close(locked, outcome, detail, now)
        ledger.append(
            kind=kind,
            subject=f"release:{locked.release_id}",
            actor="system",
            payload={"deployment": locked.pk, "checks": seen, "detail": detail},
        )
        if not seen:
            _tell_owners_unverified(locked, detail)
    return "passed" if seen else "unverified"


def _lock(deployment_id: int) -> Deployment:
    """The deployment, row-locked for the decision (PostgreSQL; SQLite serialises writers)."""
    return (
        Deployment.objects.select_for_update(of=("self",))
        .select_related("release__service", "release__environment", "release__change")
        .get(pk=deployment_id)
    )


def _store(deployment: Deployment, results: list[HealthResult], now: datetime) -> list[HealthCheck]:
    return HealthCheck.objects.bulk_create(
        HealthCheck(
            deployment=deployment,
            source=result.source,
            healthy=result.healthy,
            url=result.url,
            detail=result.detail[:500],
            reported_by=result.reported_by,
            checked_at=now,
        )
        for result in results
    )


def _close(deployment: Deployment, outcome: str, detail: str, now: datetime, **fields) -> None:
    """Decide the window; `fields` may fail the deployment itself (status)."""
    values = {
        "verification": outcome,
        "verified_at": now,
        "verification_detail": detail,
        "next_check_at": None,
        **fields,
    }
    Deployment.objects.filter(pk=deployment.pk).update(**values)
    for name, value in values.items():
        setattr(deployment, name, value)


def _fail(deployment: Deployment, failures: list[HealthResult], actor: User | None, now) -> None:
    """Fail the deployment on `failures`: status and verification failed, the ledger entry, the
    rollback hook, the event for subscribers and the post-implementation review, together."""
    release = deployment.release
    detail = "; ".join(_describe(result) for result in failures)
    _close(deployment, Verification.FAILED, detail, now, status=Deployment.Status.FAILED)
    rollback = _request_rollback(deployment, detail, now)
    ledger.append(
        kind="deployment.verification_failed",
        subject=f"release:{release.pk}",
        actor=actor.username if actor else "system",
        payload={
            "deployment": deployment.pk,
            "digest": deployment.digest,
            "detail": detail,
            "failures": [
                {"url": r.url, "reported_by": r.reported_by, "detail": r.detail} for r in failures
            ],
            "window_until": deployment.verify_until.isoformat(),
            "rollback_url": deployment.rollback_url,
            "rollback_delivery": str(rollback.delivery_id) if rollback else None,
        },
    )
    announce(
        release,
        "verification_failed",
        f"Post-deploy verification failed: {release} ({deployment.digest}). {detail}",
        deployment=deployment.pk,
        detail=detail,
        rollback_requested=rollback is not None,
    )
    reviews.open_review(opening=_review_opening(release, detail), actor=actor, now=now)


def _request_rollback(deployment: Deployment, detail: str, now: datetime):
    """Queue the call to the pipeline's rollback hook, signed with the organisation's event
    secret when one is configured; None when the pipeline gave no hook."""
    if not deployment.rollback_url:
        return None
    release = deployment.release
    secret = settings.SIGNOFF_EVENT_WEBHOOK_SECRET
    return outbox.enqueue(
        channel="webhook",
        kind="release.rollback",
        url=deployment.rollback_url,
        subject=f"release:{release.pk}",
        credentials={"secret": secret} if secret else {},
        payload={
            "event": "release.rollback",
            "release": release.pk,
            "deployment": deployment.pk,
            "service": release.service.slug,
            "version": release.version,
            "environment": release.environment.slug,
            "digest": deployment.digest,
            "reason": f"Post-deploy verification failed: {detail}",
            "failed_at": now.isoformat(),
            "url": reverse("approvals:release_detail", args=[release.pk]),
        },
    )


def _review_opening(release: Release, detail: str) -> reviews.ReviewOpening:
    what = f"{release.service.name} {release.version} to {release.environment.name}"
    return reviews.ReviewOpening(
        kind=Review.Kind.POST_IMPLEMENTATION,
        trigger=Review.Trigger.DEPLOYMENT_FAILED,
        change=release.change,
        service=release.service,
        summary=f"The deployment of {what} failed post-deploy verification: {detail}",
        release_id=release.pk,
    )


def _describe(result: HealthResult) -> str:
    if result.source == HealthCheck.Source.REPORT:
        return f"reported unhealthy by {result.reported_by}" + (
            f": {result.detail}" if result.detail else ""
        )
    return f"{result.url} {result.detail}"


def _window_minutes(deployment: Deployment) -> int:
    return round((deployment.verify_until - deployment.created_at).total_seconds() / 60)


def _closed_message(deployment: Deployment, now: datetime) -> str:
    if deployment.verify_until is None:
        return "This deployment is not being verified: its release's policy asks for no health."
    if deployment.verification == Verification.VERIFYING:
        return (
            f"The verification window ended at {deployment.verify_until:%Y-%m-%d %H:%M:%S} UTC; "
            "health reported now changes nothing."
        )
    outcome = deployment.verification or "unverified"
    return (
        f"Verification of this deployment is already decided ({outcome}, "
        f"{deployment.verified_at:%Y-%m-%d %H:%M:%S} UTC); health reported now changes nothing."
    )


def _tell_owners_unverified(deployment: Deployment, detail: str) -> None:
    """An unverified window is worth a word to the owners: the health URLs are probably missing."""
    release = deployment.release
    notify(
        people=release.service.owners.filter(is_active=True),
        subject=f"Deployment not verified: {release}",
        body=f"{detail} Add health URLs to {release.service.name} in the catalogue, or have the "
        "pipeline report health.",
        url=reverse("approvals:release_detail", args=[release.pk]),
        reason="you own this service",
    )

"""Deployment outcomes, with the gate's answer at that moment."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from approvals.announcements import announce
from approvals.emergencies.models import EmergencyException
from approvals.emergencies.monitoring import announce_enhanced_monitoring
from approvals.gate import evaluate_gate
from approvals.models import Deployment, Release
from approvals.services.transitions import follow_change
from approvals.verification.services import window_fields
from changes.records.models import ChangeRecord
from changes.reviews import services as reviews
from changes.reviews.models import Review
from governance.authority.selectors import administrators
from governance.ledger import services as ledger
from governance.models import User
from governance.notifications.services import notify
from governance.policy.engine import EmergencySettings, emergency_settings
from governance.policy.services import active_policy_version


def record_deployment(
    *,
    release: Release,
    actor: User,
    status: str,
    url: str = "",
    digest: str | None = None,
    rollback_url: str = "",
) -> Deployment:
    """Record a deployment outcome with the gate's answer for the deployed digest at that moment.

    Never refused: the deployment happened, and refusing to record it would hide that. When the
    gate had not approved it (pending, blocked, expired, rejected, another digest), it is an
    unapproved deployment: flagged on the release, ledgered as its own kind, and the service's
    owners and the administrators are told.

    A successful deployment of a release whose plan asks for post-deploy verification opens
    its window (approvals.verification): health is watched until `verify_until`, and a failure
    calls `rollback_url`.
    """
    deployed = digest or release.digest
    now = timezone.now()
    with transaction.atomic(), ledger.deferred():
        gate = evaluate_gate(Release.objects.for_gate().get(pk=release.pk), digest=deployed)
        deployment = Deployment.objects.create(
            release=release,
            status=status,
            reported_by=actor,
            url=url,
            rollback_url=rollback_url,
            digest=deployed,
            gate_status=gate.status,
            gate_reasons=gate.reasons,
            approved=gate.status == "approved",
            created_at=now,
            **window_fields(release, status, now),
        )
        _mark_release_deployed(release, deployment)
        ledger.append(
            kind="deployment.reported" if deployment.approved else "deployment.unapproved",
            subject=f"release:{release.pk}",
            actor=actor.username,
            payload={
                "status": status,
                "url": url,
                "digest": deployed,
                "approved_digest": release.digest,
                "gate": gate.status,
                "reasons": gate.reasons,
                **_window_payload(deployment),
            },
        )
        if not deployment.approved:
            _alert_unapproved(release, deployment)
        announce_enhanced_monitoring(release, moment="deployed", status=deployment.status)
        if deployment.status == Deployment.Status.SUCCEEDED:
            follow_change(release, actor)
        for opening in _review_openings(release, deployment):
            reviews.open_review(opening=opening, actor=actor, now=deployment.created_at)
    return deployment


def _review_openings(release: Release, deployment: Deployment) -> list[reviews.ReviewOpening]:
    """The reviews this outcome calls for: a post-implementation review for a failed or rolled
    back deployment of an approved release and for an unapproved deployment; the change's
    post-mortem when an emergency change's release is deployed."""
    what = f"{release.service.name} {release.version} to {release.environment.name}"
    found: list[tuple[str, str, str]] = []
    if not deployment.approved:
        found.append(
            (
                Review.Trigger.UNAPPROVED_DEPLOYMENT,
                Review.Kind.POST_IMPLEMENTATION,
                f"{what} was deployed while the gate said '{deployment.gate_status}'.",
            )
        )
    elif deployment.status == Deployment.Status.FAILED:
        found.append(
            (
                Review.Trigger.DEPLOYMENT_FAILED,
                Review.Kind.POST_IMPLEMENTATION,
                f"The approved deployment of {what} failed.",
            )
        )
    if deployment.status == Deployment.Status.ROLLED_BACK:
        found.append(
            (
                Review.Trigger.ROLLED_BACK,
                Review.Kind.POST_IMPLEMENTATION,
                f"The deployment of {what} was rolled back.",
            )
        )
    openings = [
        reviews.ReviewOpening(
            kind=kind,
            trigger=trigger,
            change=release.change,
            service=release.service,
            summary=summary,
            release_id=release.pk,
        )
        for trigger, kind, summary in found
    ]
    if (
        deployment.status == Deployment.Status.SUCCEEDED
        and release.change.type == ChangeRecord.Type.EMERGENCY
    ):
        openings.append(_post_mortem(release, deployment, what))
    return openings


def _post_mortem(release: Release, deployment: Deployment, what: str) -> reviews.ReviewOpening:
    """The emergency change's post-mortem, due the policy's hours after this deployment."""
    version = getattr(getattr(release, "approval", None), "policy_version", None)
    version = version or active_policy_version()
    settings = emergency_settings(version.source) if version else EmergencySettings()
    hours = settings.post_mortem_hours
    return reviews.ReviewOpening(
        kind=Review.Kind.POST_MORTEM,
        trigger=Review.Trigger.EMERGENCY,
        change=release.change,
        service=release.service,
        summary=f"Emergency change {release.change.ref} was deployed ({what}); its post-mortem "
        "must say whether the emergency was justified.",
        release_id=release.pk,
        due_at=deployment.created_at + timedelta(hours=hours),
        declared_by=_declarer(release.change),
    )


def _declarer(change: ChangeRecord) -> User | None:
    """Who declared the emergency `change` holds, if one was declared on it."""
    emergency = EmergencyException.objects.filter(change=change).select_related("declared_by")
    found = emergency.first()
    return found.declared_by if found else None


def _window_payload(deployment: Deployment) -> dict:
    """The verification window for the ledger entry, when one opened."""
    if deployment.verification != Deployment.Verification.VERIFYING:
        return {}
    return {
        "verification": {
            "until": deployment.verify_until.isoformat(),
            "interval_seconds": deployment.verification_interval,
            "rollback_url": deployment.rollback_url,
        }
    }


def _mark_release_deployed(release: Release, deployment: Deployment) -> None:
    fields = {}
    if deployment.status == Deployment.Status.SUCCEEDED:
        fields["deployed_at"] = deployment.created_at
    if not deployment.approved:
        fields["unapproved_deployment_at"] = deployment.created_at
    if fields:
        Release.objects.filter(pk=release.pk).update(**fields)
        for name, value in fields.items():
            setattr(release, name, value)


def _alert_unapproved(release: Release, deployment: Deployment) -> None:
    """Tell the service's owners and the administrators at once, whatever the hour."""
    people = {u.pk: u for u in release.service.owners.filter(is_active=True)}
    people.update({u.pk: u for u in administrators()})
    notify(
        people=people.values(),
        subject=f"Unapproved deployment: {release}",
        body=f"{deployment.reported_by.username} reported a {deployment.status} deployment of "
        f"{release.service.name} {release.version} ({deployment.digest}) to "
        f"{release.environment.name} while the gate said '{deployment.gate_status}': "
        f"{' '.join(deployment.gate_reasons)} It is recorded as an unapproved deployment.",
        url=reverse("approvals:release_detail", args=[release.pk]),
        reason="unapproved deployment",
    )
    announce(
        release,
        "unapproved_deployment",
        f"Unapproved deployment: {release} ({deployment.digest}) was deployed while the gate "
        f"said '{deployment.gate_status}'.",
        status=deployment.status,
        reasons=deployment.gate_reasons,
    )

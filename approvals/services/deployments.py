"""Deployment outcomes, with the gate's answer at that moment."""

from __future__ import annotations

from django.db import transaction
from django.urls import reverse

from approvals.gate import evaluate_gate
from approvals.models import Deployment, Release
from approvals.services.transitions import follow_change
from governance.authority.selectors import administrators
from governance.ledger import services as ledger
from governance.models import User
from governance.notifications.services import notify


def record_deployment(
    *, release: Release, actor: User, status: str, url: str = "", digest: str | None = None
) -> Deployment:
    """Record a deployment outcome with the gate's answer for the deployed digest at that moment.

    Never refused: the deployment happened, and refusing to record it would hide that. When the
    gate had not approved it (pending, blocked, expired, rejected, another digest), it is an
    unapproved deployment: flagged on the release, ledgered as its own kind, and the service's
    owners and the administrators are told.
    """
    deployed = digest or release.digest
    with transaction.atomic(), ledger.deferred():
        gate = evaluate_gate(Release.objects.for_gate().get(pk=release.pk), digest=deployed)
        deployment = Deployment.objects.create(
            release=release,
            status=status,
            reported_by=actor,
            url=url,
            digest=deployed,
            gate_status=gate.status,
            gate_reasons=gate.reasons,
            approved=gate.status == "approved",
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
            },
        )
        if not deployment.approved:
            _alert_unapproved(release, deployment)
        if deployment.status == Deployment.Status.SUCCEEDED:
            follow_change(release, actor)
    return deployment


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

"""The releases linked to a change, for its page (changes.records), registered by
ApprovalsConfig.ready(): the change pages live below this app and cannot read it."""

from __future__ import annotations

from django.urls import reverse

from approvals.gate import evaluate_gate
from approvals.models import Release
from changes.records.models import ChangeRecord
from governance.models import User


def linked_release_rows(change: ChangeRecord, user: User) -> list[dict]:
    """The change's releases `user` may see, newest first, each with its gate's answer now."""
    releases = (
        Release.objects.restrict(user, delegated=True)
        .filter(change_id=change.pk)
        .select_related("service", "environment", "change", "approval")
        .order_by("-created_at", "-pk")
    )
    rows = []
    for release in releases:
        gate = evaluate_gate(release)
        rows.append(
            {
                "id": release.pk,
                "label": f"{release.service.name} {release.version} → {release.environment.name}",
                "url": reverse("approvals:release_detail", args=[release.pk]),
                "status": release.approval.status,
                "gate": gate.status,
                "reasons": gate.reasons,
                "deployed_at": release.deployed_at,
                "unapproved_deployment_at": release.unapproved_deployment_at,
            }
        )
    return rows
